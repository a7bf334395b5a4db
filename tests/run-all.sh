#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then runs them.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# What serving and rendering need, the same script the README's first command and the
# Dockerfile run: the pinned toolchain and the wasm32-wasip2 target, Debian's ffmpeg, chromium
# and Node, the Remotion renderer's packages and bundle; and chromedriver for the dashboard's
# browser tests.
scripts/setup.sh tests
# From PyPI: the Standard Webhooks reference verifier the tests check signatures with, and
# componentize-py for Python templates. From npm: the JS SDK's build tools (esbuild,
# componentize-js), for TypeScript/JavaScript templates.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt
npm ci --prefix guest-sdk/js --no-audit --no-fund --loglevel=error
# The TS SDK type-checks, with seed 000's own `defineTemplate` example compiled against it.
npm run --prefix guest-sdk/js --silent typecheck
# A real S3-compatible server that checks SigV4 signatures, for the storage tests (built once
# into the target dir; newer versions need a newer rustc).
tools="${CARGO_TARGET_DIR:-$PWD/target}/tools"
if [ ! -x "$tools/bin/s3s-fs" ]; then
  cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$tools" --quiet
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The same suite again on PostgreSQL: a private server (Debian's `postgresql`, installed if
# missing) in a temp dir on a free port, one database per test host.
eval "$(scripts/pg-test-server.sh start)"
trap 'scripts/pg-test-server.sh stop' EXIT
VIDFARM_TEST_DB=postgres cargo test --workspace --locked
