#!/usr/bin/env bash
# Issue #17: end-to-end jobs/s on PostgreSQL with 1, 2 and 4 worker processes (and one API
# process) against SQLite's single `serve` process, on this machine, in one run, with the
# peers' load generator (../shared/peers/loadgen: create N jobs with C in flight, then poll each).
#   scripts/bench-pg.sh [JOBS=3000] [CONCURRENCY=64] [OPERATION="sandbox-probe echo"]
# Needs target/release/vidfarm, node, curl, jq, psql; PostgreSQL runs with its durable defaults
# (fsync on, synchronous_commit on) via scripts/pg-test-server.sh with PG_DURABLE=1.
# Per run it prints jobs/s, create p50/p99, a job's create → start latency (from the jobs'
# created_at/started_at: across processes on PostgreSQL) and write transactions per job
# (PostgreSQL: transaction ids used; SQLite: the commits `/metrics` counts), and each worker's
# claim statement p50 / p99 (from the line a worker logs as it stops).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${1:-3000}" CONC="${2:-64}" OP="${3:-sandbox-probe echo}"
TEMPLATE="${OP% *}" OPERATION="${OP#* }"
BIN="${VIDFARM_BIN:-$ROOT/target/release/vidfarm}"
PEERS="${PEERS:-$ROOT/../shared/peers}"
PEERS_WORK="${PEERS_WORK:-${TMPDIR:-/tmp}/vidfarm-peers}"
[ -x "$BIN" ] || { echo "bench-pg: no $BIN (cargo build --release -p vidfarm)" >&2; exit 2; }
if [ ! -d "$PEERS_WORK/loadgen/node_modules/undici" ]; then
  rm -rf "$PEERS_WORK" && cp -r "$PEERS" "$PEERS_WORK" && chmod -R u+w "$PEERS_WORK"
  (cd "$PEERS_WORK/loadgen" && npm ci --no-audit --no-fund >&2)
fi
LOADGEN="$PEERS_WORK/loadgen/loadgen.js"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-pg.XXXXXX")"
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  # PG_LOG_TO: keep the server's log (auto_explain's plans, say).
  [ -n "${PG_LOG_TO:-}" ] && [ -n "${VIDFARM_TEST_PG_DIR:-}" ] && cp "$VIDFARM_TEST_PG_DIR/server.log" "$PG_LOG_TO"
  [ -n "${VIDFARM_TEST_PG_DIR:-}" ] && "$ROOT/scripts/pg-test-server.sh" stop
  rm -rf "$WORK"
}
trap cleanup EXIT
# PG_STATS=1: after each PostgreSQL row, the statements that took the server's time, per job
# (pg_stat_statements), on stderr.
stats_opts=""
[ "${PG_STATS:-0}" = 1 ] && stats_opts="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
# PG_EXTRA_OPTS: more server settings (experiments), e.g. auto_explain's.
eval "$(PG_DURABLE=1 PG_OPTS="$stats_opts ${PG_EXTRA_OPTS:-}" "$ROOT/scripts/pg-test-server.sh" start)"
SERVER="${VIDFARM_TEST_PG%/*}"
[ "${PG_STATS:-0}" = 1 ] && psql "$VIDFARM_TEST_PG" -qAtc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})"; }
export VIDFARM_EXAMPLE_TEMPLATES=off VIDFARM_SHUTDOWN_GRACE_MS=2000 VIDFARM_LOG=warn
# `/metrics` is read without a token (SQLite's commit count).
unset VIDFARM_METRICS_TOKEN
WORKER_LOG="warn,vidfarm::engine::worker=info"

# CPU seconds (user + system) the given processes have used so far.
cpu_of() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
pg_backends() { pgrep -P "$(head -1 "$VIDFARM_TEST_PG_DIR/data/postmaster.pid")" | paste -sd ' '; }

# run LABEL DATABASE_URL(empty: SQLite) WORKERS: one fresh platform, one loadgen run, one row.
run() {
  local label="$1" url="$2" workers="$3" port customer cus key headers out
  local data="$WORK/run-$workers-${url##*/}"
  mkdir -p "$data"
  export VIDFARM_DATABASE_URL="$url"
  customer="$("$BIN" customers create --name bench --data-dir "$data")"
  cus="$(jq -r .customer_id <<<"$customer")" key="$(jq -r .api_key <<<"$customer")"
  "$BIN" customers limits "$cus" --max-concurrent-jobs 100000 --jobs-per-minute 1000000000 --data-dir "$data" >/dev/null
  # PG_SETUP_SQL: statements run on each PostgreSQL database before its run (experiments).
  [ -n "$url" ] && [ -n "${PG_SETUP_SQL:-}" ] && psql "$url" -qAtc "$PG_SETUP_SQL" >/dev/null
  port="$(free_port)"
  if [ "$workers" = 0 ]; then
    VIDFARM_LOG="$WORKER_LOG" "$BIN" serve --data-dir "$data" --listen "127.0.0.1:$port" >"$data/serve.log" 2>&1 &
    PIDS+=($!)
  else
    "$BIN" api --data-dir "$data" --listen "127.0.0.1:$port" >"$data/api.log" 2>&1 &
    PIDS+=($!)
    for i in $(seq "$workers"); do
      mkdir -p "$data/w$i"
      VIDFARM_LOG="$WORKER_LOG" "$BIN" worker --data-dir "$data/w$i" >"$data/w$i.log" 2>&1 &
      PIDS+=($!)
    done
  fi
  for _ in $(seq 3000); do curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 3
  local commits0=0 commits1=0
  # Write transactions: only a transaction that writes gets a transaction id (reads, the status
  # polls among them, get none), so the ids used between two readings count the writes.
  # SQLite's commit hook counts them the same way (reads never commit).
  sqlite_commits() { curl -sf "http://127.0.0.1:$port/metrics" | awk '$1 == "vidfarm_sqlite_commits_total" {print $2}'; }
  if [ -n "$url" ]; then commits0="$(psql "$url" -Atc "SELECT txid_current()")"; else commits0="$(sqlite_commits)"; fi
  local pg0=0 pg1=0 ours0
  [ -n "$url" ] && pg0="$(cpu_of $(pg_backends))"
  ours0="$(cpu_of "${PIDS[@]}")"
  [ -n "$url" ] && [ "${PG_STATS:-0}" = 1 ] && psql "$VIDFARM_TEST_PG" -qAtc "SELECT pg_stat_statements_reset()" >/dev/null
  # PG_PERF=1: where the server's backends spend their CPU during the load (perf, by symbol).
  local perf_pid=""
  if [ -n "$url" ] && [ "${PG_PERF:-0}" = 1 ]; then
    perf record -q ${PG_PERF_ARGS:--F 2000} -o "$data/pg.perf" -p "$(pg_backends | tr ' ' ',')" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  headers="$(jq -cn --arg u "$cus" --arg k "$key" '{"vidfarm-user-id": $u, "vidfarm-api-key": $k}')"
  out="$(node "$LOADGEN" -n "$JOBS" -c "$CONC" --base-url "http://127.0.0.1:$port" \
    --create-path "/templates/$TEMPLATE/operations/$OPERATION" --status-path "/templates/$TEMPLATE/jobs/{id}" \
    --id-field job_id --status-field status --success succeeded --failure failed,cancelled \
    --headers "$headers" --body '{"tracer":"{{tracer}}","payload":{"name":"n{{i}}","i":{{i}}}}')" || true
  local latency="-" per_job="-"
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
    echo "bench-pg: $label, the server's CPU by symbol:" >&2
    [ -n "${PG_PERF_KEEP:-}" ] && cp "$data/pg.perf" "$PG_PERF_KEEP"
    perf report -i "$data/pg.perf" --stdio ${PG_PERF_REPORT:---sort dso,sym} 2>/dev/null | grep -v '^#' | grep -v '^$' | head -"${PG_PERF_TOP:-40}" >&2 || true
  fi
  if [ -n "$url" ]; then
    sleep 1
    commits1="$(psql "$url" -Atc "SELECT txid_current()")"
    if [ "${PG_STATS:-0}" = 1 ]; then
      echo "bench-pg: $label, server time per job by statement (µs of execution, calls per job):" >&2
      psql "$VIDFARM_TEST_PG" -qAt -F ' | ' -c "SELECT round((total_exec_time * 1000 / $JOBS)::numeric, 1),
          round((calls::numeric / $JOBS), 2), left(regexp_replace(query, '\s+', ' ', 'g'), 110)
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '${url##*/}'
        ORDER BY total_exec_time DESC LIMIT 14" >&2
    fi
    per_job="$(awk -v a="$commits0" -v b="$commits1" -v n="$JOBS" 'BEGIN {printf "%.2f", (b - a - 1) / n}')"
    latency="$(psql "$url" -Atc "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at)::numeric, 1)
      || ' / ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY started_at - created_at)::numeric, 1) FROM jobs")"
  else
    sleep 1
    commits1="$(sqlite_commits)"
    per_job="$(awk -v a="$commits0" -v b="$commits1" -v n="$JOBS" 'BEGIN {printf "%.2f", (b - a) / n}')"
    latency="$(python3 - "$data/vidfarm.sqlite" <<'PY'
import sqlite3, sys
d = sorted(r[0] for r in sqlite3.connect(sys.argv[1]).execute("SELECT started_at - created_at FROM jobs"))
print(f"{d[len(d) // 2]} / {d[int((len(d) - 1) * 0.99)]}")
PY
)"
  fi
  # CPU per job, ms, during the load: the vidfarm processes and the server's processes.
  [ -n "$url" ] && pg1="$(cpu_of $(pg_backends))"
  local tick ours
  tick="$(getconf CLK_TCK)" ours="$(cpu_of "${PIDS[@]}")"
  echo "bench-pg: $label: CPU per job: vidfarm $(awk -v a="$ours0" -v b="$ours" -v k="$tick" -v n="$JOBS" 'BEGIN {printf "%.2f", (b - a) / k * 1000 / n}') ms, PostgreSQL $(awk -v a="$pg0" -v b="$pg1" -v k="$tick" -v n="$JOBS" 'BEGIN {printf "%.2f", (b - a) / k * 1000 / n}') ms, load generator $(jq -r --arg n "$JOBS" '.loadgen_cpu_s * 1000 / ($n | tonumber) * 100 | round / 100' <<<"$out") ms" >&2
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  # Each worker logs its claims' p50 / p99 as it stops (one pair per worker process).
  local claims
  claims="$(cat "$data"/*.log | grep 'claims made by this worker' \
    | sed -E 's/.*p50_ms[":= ]+([0-9.]+).*p99_ms[":= ]+([0-9.]+).*/\1 \/ \2/' | paste -sd ';' | sed 's/;/; /g')"
  jq -r --arg l "$label" --arg lat "$latency" --arg pj "$per_job" --arg cl "${claims:--}" \
    '"| \($l) | **\(.e2e_jobs_per_s | round)** | \(.create_p50_ms) | \(.create_p99_ms) | \($lat) | \($cl) | \($pj) | \(.failed) |"' <<<"$out"
}

echo "bench-pg: $JOBS × $TEMPLATE $OPERATION, $CONC in flight, $(nproc) cores, vidfarm $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" >&2
echo "| database, processes | e2e jobs/s | create p50 ms | create p99 ms | create → start p50 / p99 ms | claim p50 / p99 ms (per worker) | write transactions per job | failed |"
echo "|---|---|---|---|---|---|---|---|"
[ "${SQLITE_ROW:-1}" = 1 ] && run "SQLite, 1 serve" "" 0
# WORKERS: the PostgreSQL rows to run (worker processes per row).
for n in ${WORKERS:-1 2 4}; do
  run "PostgreSQL, 1 api + $n worker" "$SERVER/bench_$n" "$n"
done
