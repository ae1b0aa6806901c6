#!/usr/bin/env bash
# Session 37 (issue 15): runs/qa-win finished (steps 5-6 of its decay). When its result, the
# best checkpoint by validation, differs from the step-4 best evaluated in session 36 as
# `kvpacket:qawin`, those rows and the adapter copy are replaced and the sets re-evaluated
# (runs/session36.sh); otherwise the session-36 rows already are the run's result. Resumable:
# rerun (eval skips rows it has; the rows are dropped only while the copy is stale).
set -euo pipefail
cd "$(dirname "$0")/.."
result=runs/qa-win/adapter.safetensors
copy=adapters/qwen2.5-0.5b/qawin.safetensors
[ -f $result ] || { echo "runs/qa-win has not finished (no $result)"; exit 1; }
fp() { ./target/release/kvpacket adapter show "$1" 2>/dev/null | grep -m1 '"fingerprint"'; }
if [ "$(fp $result)" != "$(fp $copy)" ]; then
  python3 - <<'PY'
import json
p = "docs/results/issue15/qwen2.5-0.5b/results.jsonl"
rows = [l for l in open(p) if json.loads(l)["method"] != "kvpacket:qawin"]
open(p, "w").writelines(rows)
PY
  cp $result $copy
fi
runs/session36.sh
