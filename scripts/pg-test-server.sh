#!/usr/bin/env bash
# A private PostgreSQL server for the test suite's PostgreSQL pass: a fresh cluster in a temp
# dir, on a free loopback port, run by an unprivileged user (the server refuses root). Installs
# Debian's `postgresql` when no server binaries are present.
#   scripts/pg-test-server.sh start   prints `export VIDFARM_TEST_PG=postgres://…` and
#                                     `export VIDFARM_TEST_PG_DIR=…` for `eval`
#   scripts/pg-test-server.sh stop    stops the server in $VIDFARM_TEST_PG_DIR, removes the dir
# Durability settings are relaxed (fsync off): the tests kill hosts, never this server, and a
# suite's databases are thrown away with it. PG_DURABLE=1 keeps the server's defaults (benchmarks).
set -euo pipefail

case "${1:-}" in
stop)
  dir="${VIDFARM_TEST_PG_DIR:?no test server to stop}"
  bin=$(cat "$dir/bin")
  owner=$(stat -c %U "$dir/data")
  runuser_as() { if [ "$(id -un)" = "$owner" ]; then "$@"; else runuser -u "$owner" -- "$@"; fi; }
  runuser_as "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
  ;;
start) ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac

server_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(server_bin)" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
fi
bin=$(server_bin)

dir=$(mktemp -d /tmp/vidfarm-pg.XXXXXX)
echo "$bin" >"$dir/bin"
user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  user=vidfarm-pg
  id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  chown "$user" "$dir"
fi
as_user() { if [ "$(id -un)" = "$user" ]; then "$@"; else runuser -u "$user" -- "$@"; fi; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_user "$bin/initdb" -D "$dir/data" -U vidfarm --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
# Each test host opens a small pool; hosts of parallel tests add up.
relaxed="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "${PG_DURABLE:-0}" = 1 ] && relaxed=""
# PG_OPTS: more `-c name=value` settings (the benchmark's PG_STATS=1 loads pg_stat_statements).
relaxed="$relaxed ${PG_OPTS:-}"
as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=600 $relaxed -c shared_buffers=256MB" >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
echo "export VIDFARM_TEST_PG=postgres://vidfarm@127.0.0.1:$port/postgres"
echo "export VIDFARM_TEST_PG_DIR=$dir"
