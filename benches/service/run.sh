#!/usr/bin/env bash
# The service's load benchmark (issue 15), with wrk on this machine, load
# generator included. In one run, against one server:
#   1. GET /healthz throughput (the baseline);
#   2. POST /v1/check throughput (goal >= 50% of 1);
#   3. POST /v1/reserve, 64 connections, durable (synchronous=FULL):
#      throughput (goal >= 25% of 1), p99 (goal <= 20 ms), requests per fsync;
#   4. one client's reserve p50 against a CLI `qledger reserve` p50 (goal <= 1/3).
# Usage: bash benches/service/run.sh [SECONDS]   (release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
qledger=$PWD/target/release/qledger
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
# One lot and one US sale large enough that no reserve is refused.
printf 'lot_id,chip,units,lab,certificate_id,result,effective_date\nL-BENCH,H200,1000000000,Bench Lab,B-1,pass,2026-04-01\n' > "$work/lots.csv"
q lots import "$work/lots.csv"
printf 'chip,period,us_inventory_units,us_open_orders_units,attested_on,attested_by,reference\nH200,2026-Q2,1000000000,1,2026-04-01,bench,\n' > "$work/supply.csv"
q supply import "$work/supply.csv"
printf 'record_id,sale_date,chip,market,customer_id,units,unit_price_usd\nUS-BENCH,2026-04-02,H200,US,,1000000000,1\n' > "$work/us.csv"
q import "$work/us.csv"
token=$("$qledger" --db "$db" --json token issue --name bench --role desk \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$qledger" --db "$db" serve --listen "127.0.0.1:$port" 2>/dev/null &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$port"
export QLEDGER_BENCH_TOKEN=$token

# rate OUTPUT: requests/s from wrk's output.
rate() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
# pct OUTPUT P: the latency at percentile P (e.g. 50%, 99%), in ms.
pct() {
  awk -v p="$2" '$1 == p {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v = v / 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v = v * 1000}; print v}' <<<"$1"
}
groups() { curl -s "$base/metrics" | awk -v n="$1" '$1 == n {print $2}'; }

echo "== 1. GET /healthz, 64 connections, ${seconds}s"
health=$(wrk -t2 -c64 -d"${seconds}s" --latency "$base/healthz")
echo "$health" | grep -E 'Requests/sec|Non-2xx' || true
echo "== 2. POST /v1/check, 64 connections"
check=$(QLEDGER_BENCH_PATH=/v1/check wrk -t2 -c64 -d"${seconds}s" --latency -s benches/service/post.lua "$base" 2>&1)
echo "$check" | grep -E 'Requests/sec|non2xx' || true
echo "== 3. POST /v1/reserve, 64 connections, durable"
g0=$(groups qledger_write_groups_total); r0=$(groups qledger_write_group_requests_total)
reserve=$(QLEDGER_BENCH_PATH=/v1/reserve wrk -t2 -c64 -d"${seconds}s" --latency -s benches/service/post.lua "$base" 2>&1)
g1=$(groups qledger_write_groups_total); r1=$(groups qledger_write_group_requests_total)
echo "$reserve" | grep -E 'Requests/sec|non2xx|  99%' || true
echo "== 4. one client's reserve against the CLI's"
single=$(QLEDGER_BENCH_PATH=/v1/reserve wrk -t1 -c1 -d"${seconds}s" --latency -s benches/service/post.lua "$base" 2>&1)
cli_p50=$(python3 - "$qledger" "$db" <<'PY'
import subprocess, sys, time
qledger, db = sys.argv[1], sys.argv[2]
times = []
for i in range(60):
    start = time.perf_counter_ns()
    subprocess.run([qledger, "--db", db, "--quiet", "reserve", "--order", f"CLI-{i}", "--chip", "H200",
                    "--market", "CN", "--units", "1", "--date", "2026-06-30", "--customer", "C-ALPHA",
                    "--lot", "L-BENCH"], check=True)
    times.append(time.perf_counter_ns() - start)
times.sort()
print(f"{times[len(times) // 2] / 1e6:.3f}")
PY
)
python3 - "$(rate "$health")" "$(rate "$check")" "$(rate "$reserve")" "$(pct "$reserve" 99%)" \
  "$(pct "$single" 50%)" "$cli_p50" "$((g1 - g0))" "$((r1 - r0))" <<'PY'
import sys
health, check, reserve, p99, single, cli, groups, requests = sys.argv[1:]
health, check, reserve = float(health), float(check), float(reserve)
print()
print(f"healthz               {health:10.0f} req/s")
print(f"check                 {check:10.0f} req/s   ratio {check / health:.2f}  (goal >= 0.50)")
print(f"reserve, 64 conns     {reserve:10.0f} req/s   ratio {reserve / health:.2f}  (goal >= 0.25)")
print(f"reserve p99           {float(p99):10.2f} ms      (goal <= 20)")
print(f"reserve, one client   p50 {float(single):.3f} ms; CLI reserve p50 {float(cli):.3f} ms; ratio {float(single) / float(cli):.2f} (goal <= 0.33)")
groups, requests = int(groups), int(requests)
print(f"fsyncs (groups)       {groups}, carrying {requests} requests: {requests / max(groups, 1):.1f} per fsync")
PY
