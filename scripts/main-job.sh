#!/usr/bin/env bash
# The main job on the shipped fixtures: a fresh ledger with the reference
# data loaded, the nightly sales files imported, 2026-Q1 closed, the chain
# verified, and the 2026-Q1 report printed. Usage: bash scripts/main-job.sh [LEDGER]
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
for nightly in fixtures/sales/*.csv; do
  q import "$nightly"
done
q policy show
q close --period 2026-Q1
q verify
echo "digest: $(q digest)"
q report --period 2026-Q1
