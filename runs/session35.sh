#!/usr/bin/env bash
# Session 35 (issue 15): waits for runs/qa-hdr (the header trained on QA as well) to finish,
# then evaluates its best checkpoint as `kvpacket:qahdr` on issue 15's sets, QA first (what it
# trains for), then the biography sets the default must keep. Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
while pgrep -f "run-dir runs/qa-hdr" >/dev/null; do sleep 20; done
runs/eval-qwen-run.sh qa-hdr qahdr hotpotqa bio10 bio5 heldout musique
