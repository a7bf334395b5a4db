#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then runs them.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pinned toolchain, its components and the wasm32-wasip2 target (rust-toolchain.toml).
# rustup may not auto-install (RUSTUP_AUTO_INSTALL=0), and does not add a toolchain file's
# targets to a toolchain installed before, so install them explicitly (all idempotent).
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if rustup toolchain list | grep -q "^$toolchain"; then
  rustup +"$toolchain" target add wasm32-wasip2 >/dev/null
  rustup +"$toolchain" component add rustfmt clippy >/dev/null
else
  rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy --target wasm32-wasip2 >/dev/null
fi

# Independent peers the tests talk to: the Standard Webhooks reference verifier (PyPI).
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
