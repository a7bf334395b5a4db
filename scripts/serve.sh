#!/usr/bin/env bash
# The README's first command: installs what serving and rendering need (scripts/setup.sh,
# idempotent, quick once done) and runs the platform with its embedded defaults. Arguments
# go to `vidfarm serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --locked -p vidfarm -- serve "$@"
