#!/usr/bin/env bash
# The Warden demo: Envoy with warden.wasm and the demo policy on loopback,
# and a short tour of what it allows, what it refuses and what it records.
#
# Keys, API keys and tokens are generated fresh on every run by
# `warden-policy demo` into .warden/demo/ (never committed). Envoy listens
# on 127.0.0.1:10000 (echo upstream on 10001, admin on 10002, and a key
# server for the partner issuer's fetched JWKS on 10003). A second listener
# on 127.0.0.1:10443 requires client certificates (made by make-certs.sh).
#
# WARDEN_DEMO_ONCE=1 stops after the tour instead of serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=.warden/demo
listen=10000 upstream=10001 admin=10002 jwks=10003 mtls=10443

bash examples/setup.sh
cargo build --quiet --release --target wasm32-wasip1 -p warden
cargo build --quiet --release -p warden-policy
tool=target/release/warden-policy

rm -rf "$out" && mkdir -p "$out"
$tool demo policies/demo/policy.json "$out"
bash examples/envoy/make-certs.sh "$out/tls"
$tool envoy examples/envoy/envoy.yaml --config "$out/plugin-config.json" \
  --wasm "$PWD/target/wasm32-wasip1/release/warden.wasm" \
  --listen $listen --upstream $upstream --admin $admin --jwks $jwks \
  --mtls $mtls --tls-dir "$PWD/$out/tls" > "$out/envoy.yaml"

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; }
trap stop EXIT
python3 examples/envoy/echo_upstream.py $upstream > /dev/null &
pids+=($!)
python3 -m http.server --bind 127.0.0.1 --directory "$out/jwks" $jwks > /dev/null 2>&1 &
pids+=($!)
.venv/bin/envoy --config-path "$out/envoy.yaml" --log-format '[%l][%n] %v' \
  2> "$out/envoy.log" &
pids+=($!)

for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$admin/ready" > /dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$admin/ready" > /dev/null \
  || { echo "envoy did not start; see $out/envoy.log"; exit 1; }

token() { cat "$out/tokens/$1.jwt"; }
apikey() { cat "$out/api-keys/$1.key"; }

# call TITLE HOST METHOD PATH [HEADER...]: one request, its answer, and
# what the upstream saw of Warden's headers. With client=NAME set, the
# request goes to the mTLS listener with that client certificate.
call() {
  local title=$1 host=$2 method=$3 path=$4
  shift 4
  local args=(-s -X "$method" -H "host: $host") url="http://127.0.0.1:$listen$path"
  if [[ -n ${client:-} ]]; then
    args+=(--cacert "$out/tls/ca.pem" --cert "$out/tls/$client.pem" --key "$out/tls/$client.key"
      --resolve "localhost:$mtls:127.0.0.1")
    url="https://localhost:$mtls$path"
  fi
  for h in "$@"; do args+=(-H "$h"); done
  echo
  echo "== $title"
  echo "   $method $url${client:+ (client certificate: $client)}"
  local body
  body=$(curl "${args[@]}" -o - -w '\n%{http_code} %header{www-authenticate}' "$url")
  local status=${body##*$'\n'}
  body=${body%$'\n'*}
  echo "   -> $status"
  if [[ $status == 200* ]]; then
    echo "$body" | jq -c '[.headers[] | select(.[0] | test("^x-warden-|^authorization$|^x-api-key$"))]' \
      | sed 's/^/   upstream saw: /'
  else
    echo "   body: $body"
  fi
}

call "finance service reads the ledger (RS256 token)" books.demo.test GET /ledger/2026/12 \
  "authorization: Bearer $(token ledger-sync)"
call "outside auditor reads a report (ES256 token, keys fetched from its issuer)" books.demo.test GET /reports/2026-11 \
  "authorization: Bearer $(token auditor-reports)"
call "invoice bot posts an invoice (API key)" books.demo.test POST /invoices/INV-88 \
  "x-api-key: $(apikey invoice-bot)"
call "a client claims to be someone else" books.demo.test GET /ledger/1 \
  "x-api-key: $(apikey invoice-bot)" "x-warden-identity: payroll-export"
call "finance service tries employee records (wrong group)" people.demo.test GET /employees/17 \
  "authorization: Bearer $(token ledger-sync)"
call "no credential at all" books.demo.test GET /ledger/1
call "expired token" books.demo.test GET /ledger/1 \
  "authorization: Bearer $(token expired)"
call "token with a changed subject (bad signature)" books.demo.test GET /ledger/1 \
  "authorization: Bearer $(token tampered)"
call "token from an issuer nobody trusts" books.demo.test GET /ledger/1 \
  "authorization: Bearer $(token wrong-issuer)"
call "retired identity" people.demo.test GET /employees/17 \
  "authorization: Bearer $(token legacy-payroll)"
call "suspended identity (API key)" books.demo.test GET /reports/2026-11 \
  "x-api-key: $(apikey stats-scraper)"
client=reconciler call "reconciler proves itself with its SPIFFE certificate" \
  books.demo.test GET /ledger/2026/12
client=outsider call "a certificate from an untrusted SPIFFE trust domain" \
  books.demo.test GET /ledger/2026/12
client=treasury call "treasury bot with a token not bound to its certificate" \
  books.demo.test GET /ledger/2026/12 "authorization: Bearer $(token treasury-bot)"

sleep 0.5
echo
echo "== decision records (from $out/envoy.log)"
grep -a '"policy_revision"' "$out/envoy.log" | sed 's/^[^{]*//' \
  | jq -c '{identity, credential, method, host, path, decision, status, reason, group, grant}'

if [[ ${WARDEN_DEMO_ONCE:-0} == 1 ]]; then
  exit 0
fi
echo
echo "Envoy with Warden is listening on http://127.0.0.1:$listen (Ctrl-C to stop)."
echo "Tokens: $out/tokens/, API keys: $out/api-keys/, log: $out/envoy.log"
wait
