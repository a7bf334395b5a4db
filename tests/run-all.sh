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

# From Debian: ffmpeg (the FFmpeg render path; ffprobe checks every rendered video) and
# chromium (Remotion renders). Installed only when missing; root, or sudo when there is one.
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null || ! command -v chromium >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq --no-install-recommends ffmpeg chromium >/dev/null \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends ffmpeg chromium >/dev/null; }
fi
# From PyPI: the Standard Webhooks reference verifier the tests check signatures with, and
# componentize-py for Python templates. From npm: the JS SDK's build tools (esbuild,
# componentize-js), for TypeScript/JavaScript templates.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt
npm ci --prefix guest-sdk/js --no-audit --no-fund --loglevel=error
# The Remotion renderer: pinned packages, its compositions bundled once (renders use the bundle).
npm ci --prefix renderers/remotion --no-audit --no-fund --loglevel=error
npm run --prefix renderers/remotion --silent bundle >/dev/null
# A real S3-compatible server that checks SigV4 signatures, for the storage tests (built once
# into the target dir; newer versions need a newer rustc).
tools="${CARGO_TARGET_DIR:-$PWD/target}/tools"
if [ ! -x "$tools/bin/s3s-fs" ]; then
  cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$tools" --quiet
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
