#!/usr/bin/env bash
# Issues #16 and #17: what one claim costs with many customers waiting, on both backends. Fills a
# scratch database with CUSTOMERS customers (default 500), each with 100 finished, 2 running and
# QUEUED (default 38) queued jobs under the default cap of 4, then runs the claim statement of
# host/src/db/jobs.rs (SQLite, timed by the sqlite3 shell) and of host/src/db/pg/jobs.rs
# (PostgreSQL, EXPLAIN ANALYZE's execution time), as it is at REV (default: the work tree),
# ROUNDS times each (default 7), always rolled back, and prints every time and the median.
#   scripts/claim-plan.sh [REV]
# Needs python3, the sqlite3 shell (Debian's sqlite3) and a vidfarm binary to migrate the scratch
# databases (VIDFARM_BIN, default target/release/vidfarm); for PostgreSQL also psql and
# VIDFARM_TEST_PG (scripts/pg-test-server.sh start prints it). Without it only SQLite runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REV="${1:-}"
BIN="${VIDFARM_BIN:-$ROOT/target/release/vidfarm}"
CUSTOMERS="${CUSTOMERS:-500}" QUEUED="${QUEUED:-38}" ROUNDS="${ROUNDS:-7}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/claim-plan.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

claim_sql() { # source file: its claim statement (at REV), with a 64-job claim's values bound in
  if [ -n "$REV" ]; then git -C "$ROOT" show "$REV:$1"; else cat "$ROOT/$1"; fi | python3 -c '
import sys
src = sys.stdin.read()
start = src.index("\"WITH RECURSIVE waiting(customer_id)")
# The statement ends at its closing quote: `",` (a literal) or `"` then `))` (a format!).
sql = src[start + 1:min(i for i in (src.find("\",\n", start), src.find("\"\n", start)) if i > 0)]
for name, value in [("{JOB_COLUMNS}", "*"), ("::BIGINT", ""), ("$1", "9999999"), ("$2", "64"), ("$3", "4"), ("$4", "'"'lease'"'"), ("$5", "30000"),
                    ("?1", "9999999"), ("?2", "64"), ("?3", "4"), ("?4", "'"'lease'"'"), ("?5", "30000")]:
    sql = sql.replace(name, value)
print(sql)'
}

# The data set, in SQL both backends read.
cat >"$WORK/fill.sql" <<SQL
WITH RECURSIVE c(c) AS (SELECT 1 UNION ALL SELECT c + 1 FROM c WHERE c < $CUSTOMERS)
INSERT INTO customers (id, name, created_at) SELECT 'cus_' || (100000 + c), 'c', 0 FROM c;
WITH RECURSIVE c(c) AS (SELECT 1 UNION ALL SELECT c + 1 FROM c WHERE c < $CUSTOMERS),
               n(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM n WHERE n < 102 + $QUEUED)
INSERT INTO jobs (id, customer_id, template_id, template_version, template_digest, operation, workflow, tracer, status,
                  payload, config, max_retries, run_after, start_ms, created_at, updated_at, started_at, finished_at)
SELECT 'job_' || (100000 + c) || '_' || (10000 + n), 'cus_' || (100000 + c), 'hello', '1', 'd', 'greet', 'greet', 't',
       CASE WHEN n <= 100 THEN 'succeeded' WHEN n <= 102 THEN 'running' ELSE 'queued' END, '{}', '{}',
       3, 1000 + n, 0, 0, 0, CASE WHEN n <= 102 THEN 1000 + n + c END, CASE WHEN n <= 100 THEN 2000 + n END
FROM c, n;
ANALYZE;
SQL

report() { # backend times...
  local backend="$1"
  shift
  echo "$backend, claim of 64, $CUSTOMERS customers waiting ($QUEUED queued, 2 running, cap 4 each), ${REV:-work tree}: $* ms"
  printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {printf "  median %.1f ms\n", a[int((NR + 1) / 2)]}'
}

# SQLite: a fresh file.
"$BIN" db migrate --data-dir "$WORK/sqlite" >/dev/null
sqlite3 "$WORK/sqlite/vidfarm.sqlite" <"$WORK/fill.sql"
claim_sql host/src/db/jobs.rs >"$WORK/sqlite.sql"
times=()
for _ in $(seq "$ROUNDS"); do
  times+=("$( { echo ".timer on"; echo "BEGIN;"; cat "$WORK/sqlite.sql"; echo ";"; echo "ROLLBACK;"; } |
    sqlite3 "$WORK/sqlite/vidfarm.sqlite" | awk '/^Run Time/ {print $4 * 1000}' | tail -n 2 | head -n 1)")
done
report SQLite "${times[@]}"

# PostgreSQL: a scratch database on the test server, filled once per size.
[ -n "${VIDFARM_TEST_PG:-}" ] || exit 0
URL="${VIDFARM_TEST_PG%/*}/claim_plan_${CUSTOMERS}_${QUEUED}"
if ! psql "$URL" -Atc "SELECT 1 FROM jobs LIMIT 1" >/dev/null 2>&1; then
  VIDFARM_DATABASE_URL="$URL" "$BIN" db migrate --data-dir "$WORK/pg" >/dev/null
  psql "$URL" -q -v ON_ERROR_STOP=1 <"$WORK/fill.sql"
fi
claim_sql host/src/db/pg/jobs.rs >"$WORK/pg.sql"
times=()
for _ in $(seq "$ROUNDS"); do
  times+=("$( { echo "BEGIN;"; echo "EXPLAIN (ANALYZE, TIMING OFF)"; cat "$WORK/pg.sql"; echo ";"; echo "ROLLBACK;"; } |
    psql "$URL" -q -v ON_ERROR_STOP=1 | awk '/Execution Time/ {print $3}')")
done
report PostgreSQL "${times[@]}"
