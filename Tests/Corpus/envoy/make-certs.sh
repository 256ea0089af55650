#!/usr/bin/env bash
# Generates throw-away test certificates for the Envoy corpus.
# Usage: make-certs.sh DIR
# Produces DIR/{ca.crt,server.crt,server.key,client.crt,client.key}.
# Nothing produced here is ever committed; check.sh calls this with a temp dir.
set -euo pipefail
DIR=${1:?usage: make-certs.sh DIR}
mkdir -p "$DIR"
cd "$DIR"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# CA
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
  -keyout "$tmp/ca.key" -out ca.crt -subj "/CN=meshctl test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1

# Server cert: localhost / 127.0.0.1 / ::1
openssl req -newkey rsa:2048 -nodes -sha256 -keyout server.key -out "$tmp/server.csr" \
  -subj "/CN=localhost" >/dev/null 2>&1
cat >"$tmp/server.ext" <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
EOF
openssl x509 -req -in "$tmp/server.csr" -CA ca.crt -CAkey "$tmp/ca.key" -CAcreateserial \
  -CAserial "$tmp/ca.srl" -days 3650 -sha256 -extfile "$tmp/server.ext" -out server.crt >/dev/null 2>&1

# Client cert with SPIFFE URI SAN
openssl req -newkey rsa:2048 -nodes -sha256 -keyout client.key -out "$tmp/client.csr" \
  -subj "/CN=test" >/dev/null 2>&1
cat >"$tmp/client.ext" <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectAltName=URI:spiffe://mesh.local/ns/default/sa/test
EOF
openssl x509 -req -in "$tmp/client.csr" -CA ca.crt -CAkey "$tmp/ca.key" \
  -CAserial "$tmp/ca.srl" -CAcreateserial -days 3650 -sha256 -extfile "$tmp/client.ext" \
  -out client.crt >/dev/null 2>&1

chmod 600 server.key client.key
ls "$DIR" >/dev/null
