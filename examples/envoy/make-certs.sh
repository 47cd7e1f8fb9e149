#!/usr/bin/env bash
# Makes a throwaway CA and the certificates the demo and the tests use for
# mTLS, with OpenSSL: a server certificate for localhost, and client
# certificates whose URI SAN is a SPIFFE ID. Also writes each client
# certificate in DER (NAME.der), whose SHA-256 is the `x5t#S256` thumbprint
# that certificate-bound tokens carry. Valid for two days.
#
# Usage: make-certs.sh OUT-DIR
set -euo pipefail
out=$1
mkdir -p "$out"
cd "$out"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2> /dev/null; }

key ca
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=Warden demo CA" 2> /dev/null

# sign NAME SUBJECT EXTENSIONS
sign() {
  key "$1"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2> /dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2> /dev/null
  openssl x509 -in "$1.pem" -outform DER -out "$1.der"
  rm -f "$1.csr" "$1.ext"
}

sign server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"

client() {
  sign "$1" "$1" "subjectAltName=URI:$2
extendedKeyUsage=clientAuth"
}
client reconciler spiffe://demo.test/ns/books/sa/reconciler
client treasury spiffe://demo.test/ns/books/sa/treasury
client stranger spiffe://demo.test/ns/unknown/sa/stranger
client outsider spiffe://other.test/ns/books/sa/reconciler
