#!/usr/bin/env bash
# Issue #16: Vidfarm beside the BullMQ peer, one run each, with the same external load
# generator (../shared/peers/loadgen: create N jobs with C in flight, then poll each to terminal).
# Four rows: the peer's no-op, the peer doing `hello greet`'s work (scripts/peer/greet-worker.js
# as its worker), Vidfarm's `sandbox-probe echo` and Vidfarm's `hello greet`.
#   scripts/bench-peer.sh [JOBS=5000] [CONCURRENCY=64]
# Builds nothing: needs target/release/vidfarm (cargo build --release -p vidfarm), node >= 20.18.1,
# redis-server + redis-cli (apt-get install -y redis-server), curl, jq. The first run copies the
# peer harness to $PEERS_WORK and runs `npm ci` there (../shared/peers may be read-only).
# Env: VIDFARM_BIN, PEERS, PEERS_WORK, LOADGEN_ARGS (e.g. '--warmup 2000': applied to every
# system alike), SETTLE_S (wait after Vidfarm is up before the idle RSS, default 5), KEEP_WORK=1.
# Vidfarm runs on a fresh temp data dir; its bench customer is created with the CLI and its
# fair-share caps (defaults: 4 running jobs, 60 jobs/min per customer) are raised with
# `vidfarm customers limits` before the server starts, or the run would measure those caps.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${1:-5000}" CONC="${2:-64}"
BIN="${VIDFARM_BIN:-$ROOT/target/release/vidfarm}"
PEERS="${PEERS:-$ROOT/../shared/peers}"
PEERS_WORK="${PEERS_WORK:-${TMPDIR:-/tmp}/vidfarm-peers}"
[ -x "$BIN" ] || { echo "bench-peer: no $BIN (cargo build --release -p vidfarm)" >&2; exit 2; }
for c in node npm redis-server redis-cli curl jq; do
  command -v "$c" >/dev/null || { echo "bench-peer: $c not found (redis: apt-get install -y redis-server)" >&2; exit 2; }
done
if [ ! -d "$PEERS_WORK/bullmq/node_modules/bullmq" ] || [ ! -d "$PEERS_WORK/loadgen/node_modules/undici" ]; then
  rm -rf "$PEERS_WORK" && cp -r "$PEERS" "$PEERS_WORK" && chmod -R u+w "$PEERS_WORK"
  (cd "$PEERS_WORK/bullmq" && npm ci --no-audit --no-fund >&2)
  (cd "$PEERS_WORK/loadgen" && npm ci --no-audit --no-fund >&2)
fi
LOADGEN="$PEERS_WORK/loadgen/loadgen.js"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-peer.XXXXXX")"
PEER_PID="" VF_PID=""
stop() { # pid grace_s: SIGTERM, then SIGKILL after the grace (run.sh needs up to 5 s per child)
  local pid="$1" i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq $(($2 * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  set +e
  stop "$PEER_PID" 20; stop "$VF_PID" 10
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "bench-peer: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

HZ="$(getconf CLK_TCK)"
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})"; }
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
mem_mb() { # field pids...: the sum of a /proc/PID/status field (VmRSS, VmHWM), MB
  local f="$1" t=0 p; shift
  for p in "$@"; do t=$((t + $(awk -v f="$f:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done
  awk -v k="$t" 'BEGIN {printf "%.1f", k / 1024}'
}
loadgen() { # loadgen flags...: its JSON line (exit 1 = some job failed: still a result)
  local out
  # shellcheck disable=SC2086
  out="$(node "$LOADGEN" -n "$JOBS" -c "$CONC" ${LOADGEN_ARGS:-} "$@")" || true
  [ -n "$out" ] || { echo "bench-peer: the loadgen printed nothing" >&2; return 1; }
  echo "$out"
}
row() { # system job json cpu_ticks rss_idle rss_after rss_peak
  jq -r --arg s "$1" --arg j "$2" --arg cpu "$(awk -v t="$4" -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz}')" \
    --arg ri "$5" --arg ra "$6" --arg rp "$7" \
    '"| \($s) | \($j) | **\(.e2e_jobs_per_s | round)** | \(.create_p50_ms) | \(.create_p99_ms) | \(.create_rps | round) | \(.e2e_seconds) | \(.poll_rounds) | \(.status_requests) | \(.failed) | \($cpu) | \($ri) | \($ra) / \($rp) |"' <<<"$3"
}

echo "bench-peer: $JOBS jobs, $CONC in flight, $(nproc) cores, LOADGEN_ARGS='${LOADGEN_ARGS:-}', vidfarm $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" >&2
echo "| system | job | e2e jobs/s | create p50 ms | create p99 ms | create req/s | e2e s | poll rounds | status reqs | failed | server CPU s | RSS idle MB | RSS after / peak MB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"

# 1. The BullMQ peer (API + worker + redis-server, fresh and empty); RSS and CPU are the three summed.
peer_run() { # dir job [loadgen flags...]: start the peer in dir, one loadgen run, one table row; sets LAST
  local dir="$1" job="$2" pp idle t0 t1
  shift 2
  rm -f "$WORK/peer.url"
  PEER_URL_FILE="$WORK/peer.url" GREET_OBJECTS_DIR="$WORK/peer-objects" bash "$dir/run.sh" >/dev/null 2>>"$WORK/peer.log" &
  PEER_PID=$!
  for _ in $(seq 300); do [ -s "$WORK/peer.url" ] && break; kill -0 "$PEER_PID" 2>/dev/null || break; sleep 0.1; done
  [ -s "$WORK/peer.url" ] || { cat "$WORK/peer.log" >&2; echo "bench-peer: the peer did not start" >&2; exit 1; }
  mapfile -t pp < <(pgrep -P "$PEER_PID")
  idle="$(mem_mb VmRSS "${pp[@]}")" t0="$(ticks "${pp[@]}")"
  LAST="$(loadgen --base-url "$(cat "$WORK/peer.url")" "$@")"
  t1="$(ticks "${pp[@]}")"
  row "BullMQ peer" "$job" "$LAST" $((t1 - t0)) "$idle" "$(mem_mb VmRSS "${pp[@]}")" "$(mem_mb VmHWM "${pp[@]}")"
  stop "$PEER_PID" 20; PEER_PID=""
}
peer_run "$PEERS_WORK/bullmq" no-op
BULL="$LAST"
# 1b. The same peer with `hello greet`'s work in its worker (scripts/peer/greet-worker.js, run as
# its worker.js from a folder that otherwise links the peer's files): the like-for-like row.
GREET_PEER="$WORK/bullmq-greet"
mkdir -p "$GREET_PEER"
for f in "$PEERS_WORK/bullmq"/*; do ln -s "$f" "$GREET_PEER/"; done
rm -f "$GREET_PEER/worker.js" && cp "$ROOT/scripts/peer/greet-worker.js" "$GREET_PEER/worker.js"
peer_run "$GREET_PEER" "greet" --body '{"tracer":"{{tracer}}","payload":{"name":"n{{i}}"}}'
BULL_GREET="$LAST"

# 2. Vidfarm: a fresh data dir, a bench customer with raised caps, then `serve`.
DATA="$WORK/vidfarm-data"
CUSTOMER="$("$BIN" customers create --name bench --data-dir "$DATA")"
CUS="$(jq -r .customer_id <<<"$CUSTOMER")" KEY="$(jq -r .api_key <<<"$CUSTOMER")"
"$BIN" customers limits "$CUS" --max-concurrent-jobs 100000 --jobs-per-minute 1000000000 --data-dir "$DATA" >&2
PORT="$(free_port)" BASE=""
VIDFARM_EXAMPLE_TEMPLATES=off VIDFARM_SHUTDOWN_GRACE_MS=2000 "$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" >"$WORK/vidfarm.log" 2>&1 &
VF_PID=$!
for _ in $(seq 3000); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && { BASE="http://127.0.0.1:$PORT"; break; }
  kill -0 "$VF_PID" 2>/dev/null || break; sleep 0.1
done
[ -n "$BASE" ] || { tail -n 40 "$WORK/vidfarm.log" >&2; echo "bench-peer: vidfarm did not start" >&2; exit 1; }
sleep "${SETTLE_S:-5}" # start-up's background readiness checks finish
VF_IDLE="$(mem_mb VmRSS "$VF_PID")"
HEADERS="$(jq -cn --arg u "$CUS" --arg k "$KEY" '{"vidfarm-user-id": $u, "vidfarm-api-key": $k}')"
vidfarm_run() { # template operation body: one loadgen run, one table row; sets LAST
  local t0 t1
  t0="$(ticks "$VF_PID")"
  LAST="$(loadgen --base-url "$BASE" --create-path "/templates/$1/operations/$2" \
    --status-path "/templates/$1/jobs/{id}" --id-field job_id --status-field status --success succeeded \
    --failure failed,cancelled --headers "$HEADERS" --body "$3")"
  t1="$(ticks "$VF_PID")"
  row "Vidfarm" "$1 $2" "$LAST" $((t1 - t0)) "$VF_IDLE" "$(mem_mb VmRSS "$VF_PID")" "$(mem_mb VmHWM "$VF_PID")"
}
vidfarm_run sandbox-probe echo '{"tracer":"{{tracer}}","payload":{"i":{{i}}}}'
ECHO="$LAST"
vidfarm_run hello greet '{"tracer":"{{tracer}}","payload":{"name":"n{{i}}"}}'
GREET="$LAST"
stop "$VF_PID" 10; VF_PID=""

# 3. Against the goal: >= 2x the peer's jobs/s and create p99 <= the peer's, per job; idle RSS <= 60 MB.
echo
compare() { # label vidfarm_json peer_json
  jq -rn --arg job "$1" --argjson v "$2" --argjson b "$3" \
    '"- \($job): \(($v.e2e_jobs_per_s / $b.e2e_jobs_per_s * 100 | round) / 100)x (goal >= 2), create p99 \($v.create_p99_ms) vs \($b.create_p99_ms) ms (\(if $v.create_p99_ms <= $b.create_p99_ms then "ok" else "over" end))"'
}
compare "sandbox-probe echo vs the peer's no-op" "$ECHO" "$BULL"
compare "hello greet vs the peer's no-op" "$GREET" "$BULL"
compare "hello greet vs the peer doing greet's work" "$GREET" "$BULL_GREET"
echo "- Vidfarm idle RSS $VF_IDLE MB (goal <= 60)"
