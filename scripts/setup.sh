#!/usr/bin/env bash
# What `vidfarm serve` needs beside the binary, installed when missing (all steps idempotent):
# the pinned toolchain with the wasm32-wasip2 target (the built-in templates compile to it),
# Debian's ffmpeg (the FFmpeg render path, ffprobe for every rendered video) and chromium
# (Remotion renders), the Remotion renderer's npm packages with its compositions bundled, and
# the TS/Python examples' build tools (the JS SDK's npm packages, componentize-py).
# `scripts/serve.sh`, `tests/run-all.sh` and the Dockerfile all run this one script.
#   scripts/setup.sh              everything
#   scripts/setup.sh toolchain    only the toolchain and target
#   scripts/setup.sh tests        everything, and what only the tests need (chromedriver)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"

sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi

# rustup may not auto-install (RUSTUP_AUTO_INSTALL=0) and does not add a toolchain file's
# targets to a toolchain installed before, so install them explicitly.
if command -v rustup >/dev/null; then
  toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  if rustup toolchain list | grep -q "^$toolchain"; then
    rustup +"$toolchain" target add wasm32-wasip2 >/dev/null 2>&1
    rustup +"$toolchain" component add rustfmt clippy >/dev/null 2>&1
  else
    rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy --target wasm32-wasip2 >/dev/null
  fi
fi
[ "$what" = toolchain ] && exit 0

# Debian packages, only when missing (root, or sudo when there is one).
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
# A template's own compositions render in a network namespace whose loopback `ip` brings up.
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || command -v ip >/dev/null || missing+=(iproute2)
# The dashboard's browser tests drive Debian's Chromium through its WebDriver.
if [ "$what" = tests ]; then command -v chromedriver >/dev/null || missing+=(chromium-driver); fi
# The multi-host tests run one worker on a clock two minutes ahead, with libfaketime.
if [ "$what" = tests ]; then command -v faketime >/dev/null || missing+=(faketime); fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]} from Debian" >&2
  apt_install "${missing[@]}"
fi

# The Remotion renderer: pinned packages, its compositions bundled once (renders use the
# bundle). Re-bundled only when its sources are newer than the bundle.
renderer=renderers/remotion
if [ ! -d "$renderer/node_modules" ] || [ "$renderer/package-lock.json" -nt "$renderer/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$renderer" --no-audit --no-fund --loglevel=error
fi
if [ ! -f "$renderer/build/index.html" ] || [ -n "$(find "$renderer/src" "$renderer/build-bundle.mjs" -newer "$renderer/build/index.html" -print -quit)" ]; then
  npm run --prefix "$renderer" --silent bundle >/dev/null
fi

# What `serve` builds its TypeScript and Python example templates with (in the background, once
# per source change): the JS SDK's build tools from npm, componentize-py from PyPI. Serving works
# without them (those examples are then skipped, with a warning), so a failure here only warns.
sdk=guest-sdk/js
if [ ! -d "$sdk/node_modules" ] || [ "$sdk/package-lock.json" -nt "$sdk/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$sdk" --no-audit --no-fund --loglevel=error \
    || echo "setup: the JS SDK's packages did not install; serve will skip the TypeScript examples" >&2
fi
pinned=$(sed -n 's/^componentize-py==//p' guest-sdk/python/requirements.txt)
if [ "$(componentize-py --version 2>/dev/null | awk '{print $2}')" != "$pinned" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r guest-sdk/python/requirements.txt \
    || echo "setup: componentize-py did not install; serve will skip the Python examples" >&2
fi
