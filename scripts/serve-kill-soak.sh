#!/usr/bin/env bash
# A longer durability run of the service: SIGKILL `qledger serve` under
# reserve load N times (default 200; the test suite does 20) and check that
# every acknowledged hold is in the file, no refused one is, and verify passes.
set -euo pipefail
cd "$(dirname "$0")/.."
QLEDGER_KILL_ROUNDS=${1:-200} cargo test --test service acknowledged_holds_survive_sigkill -- --nocapture
