#!/usr/bin/env bash
# make run: validate and compile the demo mesh in Configs/, create development
# certificates for every proxy group (once), and serve the snapshot over mutual TLS
# on 127.0.0.1:18000 until Ctrl-C. Paths match Configs/mesh.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
MESHCTL=${MESHCTL:-.build/debug/meshctl}
STORE=.meshctl/store
CERTS=/tmp/meshctl-demo/certs

# The demo's proxies run on this host, and their certificates are issued below from the compiled group list: the
# first two steps skip the check of files on the proxies' hosts, the last validate makes it an error.
echo "== meshctl validate (the pre-merge check)"
"$MESHCTL" validate --configs Configs --templates templates --host-files off
mkdir -p "$STORE"
echo "== meshctl compile → $STORE"
"$MESHCTL" compile --configs Configs --templates templates --out "$STORE" --host-files off
"$MESHCTL" snapshot list --store "$STORE" | head -5

groups=$("$MESHCTL" snapshot show current --store "$STORE" --names-only | awk '/^group:/ {print $2}' | sort -u)
# (Re)issue when the CA, the operator or any group's certificate is missing (a group added since the last run).
missing=0
for name in ca operator-admin $groups; do [ -f "$CERTS/$name.crt" ] || missing=1; done
if [ "$missing" = 1 ]; then
  echo "== meshctl certs init → $CERTS (development CA, SPIFFE IDs spiffe://mesh.local/proxy/<group>)"
  args=()
  for group in $groups; do args+=(--proxy "$group"); done
  "$MESHCTL" certs init --out "$CERTS" "${args[@]}" >/dev/null
fi
echo "== meshctl validate --host-files error (every certificate, key and CA bundle the proxies load, checked on this host)"
"$MESHCTL" validate --configs Configs --templates templates --host-files error

cat <<TXT
== meshctl serve on 127.0.0.1:18000 (mutual TLS). Proxy groups: $(echo $groups | tr '\n' ' ')
   Start a proxy for a group, e.g. frontend:
     $MESHCTL bootstrap --node-id frontend-1 --node-cluster frontend --server 127.0.0.1:18000 \\
       --cert $CERTS/frontend.crt --key $CERTS/frontend.key --ca $CERTS/ca.crt --server-name localhost > /tmp/frontend.yaml
     .venv-envoy/bin/envoy -c /tmp/frontend.yaml
   A proxyless gRPC client (settlement) takes gRPC's bootstrap instead and dials xds:///payments:
     $MESHCTL bootstrap --grpc --node-id settlement-1 --node-cluster settlement --server 127.0.0.1:18000 \\
       --cert $CERTS/settlement.crt --key $CERTS/settlement.key --ca $CERTS/ca.crt > /tmp/settlement.json
     .venv/bin/python Tests/Proxyless/grpc_proxyless.py call --bootstrap /tmp/settlement.json --target xds:///payments
   Then see where every proxy stands (CSDS, as an operator):
     $MESHCTL status --server 127.0.0.1:18000 --cert $CERTS/operator-admin.crt --key $CERTS/operator-admin.key --ca $CERTS/ca.crt
   Status page, metrics and probes: http://127.0.0.1:18001/ (/metrics /healthz /readyz /debug/proxies)
   Ctrl-C drains and stops the server.
TXT
exec "$MESHCTL" serve --store "$STORE" --listen 127.0.0.1:18000 --admin 127.0.0.1:18001 \
  --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key" --client-ca "$CERTS/ca.crt"
