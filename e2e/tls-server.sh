#!/usr/bin/env bash
# e2e/tls-server.sh DIR IP: a throwaway CA (DIR/ca.pem) and a server
# certificate it signed for IP (DIR/server.pem, DIR/server.key), valid one
# day, for the tests' TLS servers (Alertmanager over https).
set -euo pipefail
dir=$1 ip=$2
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days 1 -subj /CN=imprint-test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2> /dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout server.key -out server.csr -subj /CN=imprint-test-server 2> /dev/null
printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$ip" > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 1 -extfile server.ext 2> /dev/null
rm -f server.csr server.ext ca.srl
