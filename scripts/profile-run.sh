#!/usr/bin/env bash
# Issue #16: one loadgen run against `vidfarm serve` alone, optionally under `perf record`, to see
# where a job's CPU goes (scripts/bench-peer.sh compares with the peer; this one profiles).
#   scripts/profile-run.sh [TEMPLATE=hello] [OPERATION=greet]
# Env: VIDFARM_BIN (default target/release/vidfarm), N (jobs, 5000), C (in flight, 64),
# BODY (loadgen body template), SETTLE_S (wait after start-up, 15), SERVE_ENV (extra env for
# the server, e.g. 'VIDFARM_WORKER_SLOTS=64'), PRE_SERVE (a command run on the data dir, "$1",
# before the server starts), PERF=1 (perf record -F 499 on the server;
# PERF_ARGS e.g. '--call-graph dwarf,32768'), THREADS=1 (each thread's CPU), PEERS_WORK (where bench-peer.sh installed the
# loadgen). Prints the loadgen's JSON line, the server's CPU seconds and RSS, and the work dir
# (server log, perf.data: `perf report -i DIR/perf.data --no-children --sort sym`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="${1:-hello}" OPERATION="${2:-greet}"
BIN="${VIDFARM_BIN:-$ROOT/target/release/vidfarm}"
LOADGEN="${PEERS_WORK:-${TMPDIR:-/tmp}/vidfarm-peers}/loadgen/loadgen.js"
DEFAULT_BODY='{"tracer":"{{tracer}}","payload":{"name":"n{{i}}"}}'
BODY="${BODY:-$DEFAULT_BODY}"
[ -x "$BIN" ] || { echo "profile-run: no $BIN (cargo build --release -p vidfarm)" >&2; exit 2; }
[ -f "$LOADGEN" ] || { echo "profile-run: no $LOADGEN (run scripts/bench-peer.sh once)" >&2; exit 2; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/profile-run.XXXXXX")" DATA="$WORK/data"
CUSTOMER="$("$BIN" customers create --name bench --data-dir "$DATA")"
CUS="$(jq -r .customer_id <<<"$CUSTOMER")" KEY="$(jq -r .api_key <<<"$CUSTOMER")"
"$BIN" customers limits "$CUS" --max-concurrent-jobs 100000 --jobs-per-minute 1000000000 --data-dir "$DATA" >/dev/null
# PRE_SERVE: a command run with the data dir as $1 before the server starts (experiments).
[ -n "${PRE_SERVE:-}" ] && bash -c "$PRE_SERVE" _ "$DATA"
PORT="$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})")"
# shellcheck disable=SC2086
env ${SERVE_ENV:-} VIDFARM_EXAMPLE_TEMPLATES=off VIDFARM_SHUTDOWN_GRACE_MS=2000 "$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
sleep "${SETTLE_S:-15}"
HEADERS="$(jq -cn --arg u "$CUS" --arg k "$KEY" '{"vidfarm-user-id": $u, "vidfarm-api-key": $k}')"
PERF_PID=""
if [ -n "${PERF:-}" ]; then
  # shellcheck disable=SC2086
  perf record -F 499 ${PERF_ARGS:-} -p "$PID" -o "$WORK/perf.data" 2>/dev/null &
  PERF_PID=$!
  sleep 0.5
fi
t0="$(awk '{print $14 + $15}' "/proc/$PID/stat")"
# THREADS=1: each thread's CPU during the load (which thread is the bound), by thread name.
threads() { for t in /proc/"$PID"/task/*; do echo "$(basename "$t") $(tr ' ' '_' <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done; }
[ "${THREADS:-0}" = 1 ] && threads >"$WORK/threads0"
node "$LOADGEN" --base-url "http://127.0.0.1:$PORT" -n "${N:-5000}" -c "${C:-64}" \
  --create-path "/templates/$TEMPLATE/operations/$OPERATION" --status-path "/templates/$TEMPLATE/jobs/{id}" \
  --id-field job_id --status-field status --success succeeded --failure failed,cancelled \
  --headers "$HEADERS" --body "$BODY" || true
t1="$(awk '{print $14 + $15}' "/proc/$PID/stat")"
if [ "${THREADS:-0}" = 1 ]; then
  threads >"$WORK/threads1"
  echo "threads (CPU s during the load, by name):"
  join <(sort "$WORK/threads0") <(sort "$WORK/threads1") | awk -v hz="$(getconf CLK_TCK)" '{d[$2] += ($5 - $3) / hz; c[$2]++} END {for (n in d) if (d[n] > 0) printf "  %-24s %5.2f  (%d threads)\n", n, d[n], c[n]}' | sort -k2 -rn
fi
echo "server_cpu_s=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}') rss_mb=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status")"
if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
echo "work=$WORK"
