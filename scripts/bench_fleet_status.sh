#!/bin/bash
# Fleet-status write rate of one `meshctl serve` replica on a PostgreSQL store: `meshctl loadgen` N proxies for
# D seconds (optionally CHURN reconnects/s, or CHANGES one-cluster changes spread over the run), the fleet statement counted by pg_stat_statements and the rows by
# pg_stat_user_tables. Usage: MESHCTL=.build/release/meshctl N=1000 D=30 [CHURN=50 | CHANGES=3] scripts/bench_fleet_status.sh
# Needs PostgreSQL 15 with pg_stat_statements (Debian postgresql-15); runs initdb as nobody when run as root.
set -e
M=${MESHCTL:-.build/release/meshctl}; M=$(realpath $M)
N=${N:-1000}; D=${D:-30}
W=$(mktemp -d /tmp/fb-XXXX); chmod 755 $W; mkdir -p $W/sock; if [ "$(id -u)" = 0 ]; then chown -R nobody:nogroup $W; fi
PGB=/usr/lib/postgresql/15/bin
if [ "$(id -u)" = 0 ]; then AS="setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env"; else AS=""; fi
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
$AS $PGB/initdb -D $W/data -U meshctl --auth-local=trust --auth-host=trust --no-sync --locale=C -E UTF8 >/dev/null
cat >> $W/data/postgresql.conf <<C
listen_addresses='127.0.0.1'
port=$PORT
unix_socket_directories='$W/sock'
fsync=off
synchronous_commit=off
shared_preload_libraries='pg_stat_statements'
pg_stat_statements.track='all'
C
$AS $PGB/pg_ctl -D $W/data -l $W/pg.log -w start >/dev/null
PSQL="$AS $PGB/psql -h $W/sock -p $PORT -U meshctl -At"
$PSQL -d postgres -c "CREATE DATABASE mesh" >/dev/null
$PSQL -d mesh -c "CREATE EXTENSION pg_stat_statements" >/dev/null
URL="postgres://meshctl@127.0.0.1:$PORT/mesh?sslmode=disable"
$M certs init --out $W/certs --proxy loadgen >/dev/null
V1=$($M bench-fixture --store $W/dirstore --clusters 50 --identity spiffe://mesh.local/proxy/loadgen)
V2=$($M bench-fixture --store $W/dirstore --clusters 50 --identity spiffe://mesh.local/proxy/loadgen --change-cluster 3 --revision 2)
$M snapshot copy --from $W/dirstore --to "$URL" >/dev/null
XP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
AP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
$M serve --store "$URL" --listen 127.0.0.1:$XP --admin 127.0.0.1:$AP --tls-cert $W/certs/server.crt --tls-key $W/certs/server.key \
  --client-ca $W/certs/ca.crt --replica-id bench-replica > $W/serve.log 2>&1 &
SP=$!
sleep 3
Q="SELECT coalesce(sum(calls),0)||' '||coalesce(sum(rows),0) FROM pg_stat_statements WHERE query LIKE 'WITH beat AS%'"
T="SELECT n_tup_ins||' '||n_tup_upd||' '||n_tup_del FROM pg_stat_user_tables WHERE relname='meshctl_proxy_status'"
snap() { echo "$(date +%s.%N) $($PSQL -d mesh -c "$Q") $($PSQL -d mesh -c "$T")"; }
B=$(snap)
$M loadgen --server 127.0.0.1:$XP --ca $W/certs/ca.crt --cert $W/certs/loadgen.crt --key $W/certs/loadgen.key --proxies $N --duration $((D+20)) \
  --threads 1 --store "$URL" ${CHURN:+--churn-per-second $CHURN} > $W/loadgen.log 2>&1 &
LP=$!
if [ -n "$CHANGES" ]; then
  # CHANGES one-cluster changes, D/(CHANGES+1) s apart: the live version toggles between the two stored versions
  # (snapshot rollback), so every proxy is sent a new CDS/EDS and ACKs it.
  GAP=$((D / (CHANGES + 1))); LIVE=$V2
  for i in $(seq 1 $CHANGES); do
    sleep $GAP
    if [ "$LIVE" = "$V2" ]; then LIVE=$V1; else LIVE=$V2; fi
    $M snapshot rollback --store "$URL" --reason bench "$LIVE" >/dev/null
  done
  sleep $((D - GAP * CHANGES))
else
  sleep $D
fi
sleep 1.5
A=$(snap)
CONNECTED=$($PSQL -d mesh -c "SELECT count(*) FROM meshctl_proxy_status")
echo "rows while connected: $CONNECTED; mean record size (bytes, as stored): $($PSQL -d mesh -c "SELECT round(avg(pg_column_size(record))) || ' / JSON text ' || round(avg(length(record::text))) FROM meshctl_proxy_status")"
$M status --store "$URL" | head -4
$M status --store "$URL" >/dev/null; echo "status exit $?"
wait $LP || true
echo "before: $B"; echo "after:  $A"
python3 - "$B" "$A" "$N" <<P
import sys
b=[float(x) for x in sys.argv[1].split()]; a=[float(x) for x in sys.argv[2].split()]
t=a[0]-b[0]; calls=a[1]-b[1]; ins=a[3]-b[3]; upd=a[4]-b[4]; dele=a[5]-b[5]
print(f"proxies={sys.argv[3]} window={t:.1f}s fleet statements={calls:.0f} ({calls/t:.2f}/s) rows inserted={ins:.0f} updated={upd:.0f} deleted={dele:.0f} -> {(ins+upd+dele)/t:.1f} rows/s")
P
$PSQL -d mesh -c "SELECT calls, round(mean_exec_time::numeric,2) AS mean_ms, round(max_exec_time::numeric,2) AS max_ms, rows FROM pg_stat_statements WHERE query LIKE 'WITH beat AS%'"
$PSQL -d mesh -c "SELECT count(*) FROM meshctl_proxy_status"
tail -3 $W/loadgen.log
kill -TERM $SP; wait $SP || true
$PSQL -d mesh -c "SELECT count(*) FROM meshctl_proxy_status"
$AS $PGB/pg_ctl -D $W/data -w stop -m fast >/dev/null
rm -rf "$W"
