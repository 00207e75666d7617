#!/bin/sh
# Makes certs/: a test CA, a server certificate for 127.0.0.1 and
# localhost, and a client certificate, all issued by the CA. For trying
# the example only: use your own CA's certificates in production.
set -eu
mkdir -p certs && cd certs
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
openssl req -x509 $ec -days 30 -subj "/CN=Portico example CA" -keyout ca.key -out ca.crt 2>/dev/null
openssl req $ec -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext -out server.crt 2>/dev/null
openssl req $ec -subj "/CN=partner-a/O=Example Partner" -keyout client.key -out client.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out client.crt 2>/dev/null
rm -f server.csr client.csr server.ext client.ext ca.srl
echo "wrote $(pwd): ca.crt server.crt server.key client.crt client.key"
