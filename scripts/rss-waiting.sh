#!/usr/bin/env bash
# Issue #16: what a host holds per suspended job. Starts `vidfarm serve` (release), reads its
# idle RSS, then creates N `sandbox-probe await-waiting-child` jobs — each a parent waiting for
# a child that waits for a human, so 2N suspended jobs and no instance held — waits until all N
# parents are `waiting_for_child`, and reads the RSS again (after SETTLE_S, and once more after
# answering nothing: nothing is released while they wait).
#   scripts/rss-waiting.sh            N=1000
# Env: VIDFARM_BIN (default target/release/vidfarm), N (1000), SETTLE_S (15).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${VIDFARM_BIN:-$ROOT/target/release/vidfarm}"
N="${N:-1000}"
[ -x "$BIN" ] || { echo "rss-waiting: no $BIN (cargo build --release -p vidfarm)" >&2; exit 2; }
for tool in curl jq sqlite3 python3; do
  command -v "$tool" >/dev/null || { echo "rss-waiting: needs $tool (apt-get install $tool)" >&2; exit 2; }
done
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rss-waiting.XXXXXX")" DATA="$WORK/data"
CUSTOMER="$("$BIN" customers create --name rss --data-dir "$DATA")"
CUS="$(jq -r .customer_id <<<"$CUSTOMER")" KEY="$(jq -r .api_key <<<"$CUSTOMER")"
"$BIN" customers limits "$CUS" --max-concurrent-jobs 100000 --jobs-per-minute 1000000000 --data-dir "$DATA" >/dev/null
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
VIDFARM_EXAMPLE_TEMPLATES=off VIDFARM_SHUTDOWN_GRACE_MS=2000 "$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true' EXIT
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 600); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
sleep "${SETTLE_S:-15}"
IDLE="$(rss)"
echo "idle_rss_mb=$IDLE"
seq "$N" | xargs -P 16 -I@ curl -sf -o /dev/null -X POST "$BASE/templates/sandbox-probe/operations/await-waiting-child" \
  -H "vidfarm-user-id: $CUS" -H "vidfarm-api-key: $KEY" -H 'content-type: application/json' \
  -d '{"tracer":"rss-@","payload":{}}'
waiting() {
  sqlite3 -readonly "$DATA/vidfarm.sqlite" "SELECT COUNT(*) FROM jobs WHERE status = '$1'" 2>/dev/null || echo 0
}
started=$(date +%s)
until [ "$(waiting waiting_for_child)" -ge "$N" ] && [ "$(waiting waiting_for_human)" -ge "$N" ]; do
  [ $(( $(date +%s) - started )) -lt 300 ] || { echo "rss-waiting: the jobs never all suspended" >&2; exit 1; }
  sleep 1
done
echo "suspended_after_s=$(( $(date +%s) - started )) parents=$(waiting waiting_for_child) children=$(waiting waiting_for_human)"
echo "rss_with_waiting_mb=$(rss)"
sleep "${SETTLE_S:-15}"
AFTER="$(rss)"
echo "rss_with_waiting_settled_mb=$AFTER growth_mb=$(awk -v a="$AFTER" -v b="$IDLE" 'BEGIN {printf "%.1f", a - b}')"
echo "work=$WORK"
