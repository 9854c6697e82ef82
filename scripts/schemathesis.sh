#!/usr/bin/env bash
# schemathesis (from PyPI, into target/venv) against a served ledger's
# /openapi.json with an officer token: every endpoint, generated requests,
# no 5xx and every response matching its documented schema (SPEC §6).
# Run by tests/service.rs. Usage: bash scripts/schemathesis.sh [EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-25}
if [ -z "${QLEDGER:-}" ]; then
  cargo build --release --quiet
fi
qledger=${QLEDGER:-target/release/qledger}
venv=target/venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet schemathesis
fi
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
db=$work/ledger.sqlite
export QLEDGER_TODAY=2026-06-30
q() { "$qledger" --db "$db" --quiet "$@"; }
q init
q policy import fixtures/policy.csv
q customers import fixtures/customers.csv
q lots import fixtures/lots.csv
q supply import fixtures/supply.csv
q screening import fixtures/screening.csv --effective 2026-03-02
q screening clear --customer C-BETA --list "Entity List" --entry EL-2024-0117 --reason "false positive (fixture)"
for nightly in fixtures/sales/*.csv; do q import "$nightly"; done
token=$("$qledger" --db "$db" --json token issue --name schemathesis --role officer \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# A signing key, so /v1/checkpoint answers (it is 404 without one).
"$qledger" keygen --out "$work/signing.key" >/dev/null
"$qledger" --db "$db" serve --listen "127.0.0.1:$port" --signing-key "$work/signing.key" \
  2> "$work/serve.log" &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" --seed 1 "${@:2}"
