#!/usr/bin/env bash
# `make bench-store`: the store benchmark on the directory store and on PostgreSQL, side by side in one run.
# PostgreSQL is a throwaway server initdb'd into a temporary directory (as `nobody` when run as root, since the
# server refuses root), on a Unix socket there, with fsync on (the figures are for a durable database); stopped
# and removed at the end.
set -euo pipefail
meshctl=${1:?usage: bench_store.sh MESHCTL [SERVICES] [CHANGES]}
services=${2:-10000}
changes=${3:-100}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed: make deps installs the postgresql package" >&2; exit 2; }
dir=$(mktemp -d /tmp/mbench-XXXXXX)
as=()
if [ "$(id -u)" = 0 ]; then
  chown nobody:nogroup "$dir"; chmod 755 "$dir"
  as=(setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env)
fi
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
"${as[@]}" "$bin/initdb" -D "$dir/data" -U meshctl --auth=trust --encoding=UTF8 --locale=C >/dev/null
port=$(( 20000 + RANDOM % 20000 ))
"${as[@]}" "$bin/postgres" -D "$dir/data" -k "$dir" -p "$port" -c listen_addresses='' >"$dir/postgres.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do "${as[@]}" "$bin/pg_isready" -h "$dir" -p "$port" -U meshctl >/dev/null 2>&1 && break; sleep 0.1; done
for db in bench notice; do "${as[@]}" "$bin/psql" -h "$dir" -p "$port" -U meshctl -d postgres -qc "CREATE DATABASE $db"; done
socket=$(printf %s "$dir" | sed 's|/|%2F|g')
echo "== directory store ($services services, $changes one-cluster changes)"
"$meshctl" snapshot bench --services "$services" --changes "$changes"
echo
echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on a Unix socket, fsync on ($services services, $changes one-cluster changes)"
"$meshctl" snapshot bench --services "$services" --changes "$changes" \
  --store "postgres://meshctl@$socket:$port/bench" --notice-store "postgres://meshctl@$socket:$port/notice"
