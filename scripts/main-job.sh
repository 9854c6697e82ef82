#!/usr/bin/env bash
# The main job on the shipped fixtures: a fresh ledger with the reference
# data loaded (policy, customers, lots, US-supply attestations, a
# restricted-party list snapshot and one documented false positive), the
# nightly sales files imported, the licence rules shown at work, 2026-Q1
# closed, the chain verified, and the 2026-Q1 report printed. Usage: bash scripts/main-job.sh [LEDGER]
set -euo pipefail
cd "$(dirname "$0")/.."
# QLEDGER names another build of the binary (the tests pass theirs).
if [ -z "${QLEDGER:-}" ]; then
  cargo build --release --quiet
fi
qledger=${QLEDGER:-target/release/qledger}
db=${1:-target/fixture-ledger.sqlite}
as_of=2026-06-30   # the ledger's clock for the fixtures (end of 2026-Q2)
rm -f "$db" "$db-wal" "$db-shm"
q() { "$qledger" --db "$db" --as-of "$as_of" "$@"; }
q init --period quarter --restricted CN,HK,MO
q policy import fixtures/policy.csv
q customers import fixtures/customers.csv
q lots import fixtures/lots.csv
q supply import fixtures/supply.csv
q screening import fixtures/screening.csv --effective 2026-03-02
# C-BETA's name matches an Entity List alt name only after normalisation;
# the compliance officer documents that it is another company.
q screening clear --customer C-BETA --list "Entity List" --entry EL-2024-0117 \
  --reason "false positive: the listed company is registered in the UAE; C-BETA is HK company 2231457 (case SC-2026-004)"
for nightly in fixtures/sales/*.csv; do
  q import "$nightly"
done
q policy show
echo "== the daily restricted-party check (exit 1 on an uncleared hit)"
q screening check
echo "== the licence rules at work: each check below is refused (exit 1)"
refused() { if q "$@"; then echo "unexpected: allowed" >&2; exit 1; fi; }
# US supply first: the 2026-Q3 attestation has less inventory than open orders.
refused check --chip H200 --market CN --units 10 --date 2026-07-02 --customer C-ALPHA --lot L-H200-0002
# KYC: C-DELTA's review expired on 2026-08-10.
refused check --chip H200 --market MO --units 10 --date 2026-08-10 --customer C-DELTA --lot L-H200-0002
# No end-use certificate on C-EPSILON's approval.
refused check --chip H200 --market CN --units 10 --date 2026-06-01 --customer C-EPSILON --lot L-H200-0002
# Screening: C-GAMMA is on the Entity List (and its approval was revoked).
refused check --chip MI325X --market CN --units 10 --date 2026-06-01 --customer C-GAMMA --lot L-MI325X-0001
q close --period 2026-Q1
q verify
echo "digest: $(q digest)"
q report --period 2026-Q1
html="${db%.sqlite}-2026-Q1.html"
q report --period 2026-Q1 --format html > "$html"
echo "the 2026-Q1 report as a page: $html"
