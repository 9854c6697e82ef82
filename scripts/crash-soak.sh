#!/usr/bin/env bash
# A longer crash-safety run: SIGKILL the importer N times (default 500).
set -euo pipefail
cd "$(dirname "$0")/.."
QLEDGER_CRASH_ITERATIONS=${1:-500} cargo test --test crash -- --nocapture
