#!/usr/bin/env bash
# What serving the TypeScript and Python examples costs at idle: starts `vidfarm serve` (release)
# on a fresh data dir with the examples on (as `scripts/serve.sh` does) and off, waits until
# the examples are served (built once into EXAMPLE_CACHE, reused after), lets it settle, and
# prints both idle RSS figures.
#   scripts/rss-examples.sh
# Env: VIDFARM_BIN (default target/release/vidfarm), SETTLE_S (15), EXAMPLE_CACHE (default
# target/example-builds: a warm cache measures the server, not npm and componentize).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${VIDFARM_BIN:-$ROOT/target/release/vidfarm}"
CACHE="${EXAMPLE_CACHE:-$ROOT/target/example-builds}"
[ -x "$BIN" ] || { echo "rss-examples: no $BIN (cargo build --release -p vidfarm)" >&2; exit 2; }
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "rss-examples: needs $tool" >&2; exit 2; }
done

# One start: "on" or "off"; prints the idle RSS in MB.
idle_rss() {
  local work data customer cus key port pid base
  work="$(mktemp -d "${TMPDIR:-/tmp}/rss-examples.XXXXXX")" data="$work/data"
  customer="$("$BIN" customers create --name rss --data-dir "$data")"
  cus="$(jq -r .customer_id <<<"$customer")" key="$(jq -r .api_key <<<"$customer")"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  local examples="$ROOT/templates"
  [ "$1" = on ] || examples=off
  VIDFARM_EXAMPLE_TEMPLATES="$examples" VIDFARM_EXAMPLE_CACHE="$CACHE" VIDFARM_SHUTDOWN_GRACE_MS=2000 \
    "$BIN" serve --data-dir "$data" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
  pid=$!
  base="http://127.0.0.1:$port"
  for _ in $(seq 600); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done
  if [ "$1" = on ]; then
    for _ in $(seq 600); do
      served="$(curl -sf "$base/templates" -H "vidfarm-user-id: $cus" -H "vidfarm-api-key: $key" \
        | jq '[.templates[].id] | (index("captioner-ts") != null) and (index("summarizer-py") != null)')"
      [ "$served" = true ] && break
      sleep 1
    done
    [ "$served" = true ] || { echo "rss-examples: the examples were not served (see $work/server.log)" >&2; kill "$pid"; exit 1; }
  fi
  sleep "${SETTLE_S:-15}"
  # VmRSS on stdout; how much of it is file-backed (mapped compiled code) on stderr.
  awk '/^Rss(Anon|File)/ {printf "%s %.1f MB  ", $1, $2 / 1024 > "/dev/stderr"}' "/proc/$pid/status"
  echo "($1)" >&2
  awk '/^VmRSS/ {printf "%.1f\n", $2 / 1024}' "/proc/$pid/status"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}

echo "idle_rss_mb_examples_on=$(idle_rss on) idle_rss_mb_examples_off=$(idle_rss off)"
