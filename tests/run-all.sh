#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then runs them.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# The toolchain and the wasm32-wasip2 target come from rust-toolchain.toml; rustup does not
# always add a pinned toolchain's targets to an already-installed toolchain, so ask it.
rustup show active-toolchain >/dev/null
rustup target add wasm32-wasip2 >/dev/null

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
