#!/usr/bin/env bash
# Runs the test suite N times in a row (default 20), stopping at the first failure; one line per
# run. Set KVPACKET_HOME to a folder holding only models/smollm2.gguf to run it as CI does
# (Qwen2.5 tests skip when that model is not fetched). Logs: /tmp/soak-I.log.
# Usage: scripts/soak.sh [N]
set -uo pipefail
cd "$(dirname "$0")/.."
for i in $(seq 1 "${1:-20}"); do
  if cargo test --release --tests > "/tmp/soak-$i.log" 2>&1; then echo "run $i ok $(date +%T)"
  else echo "run $i FAILED $(date +%T) (see /tmp/soak-$i.log)"; exit 1; fi
done
