#!/usr/bin/env bash
# Session 36 (issue 15): evaluates runs/qa-win (MuSiQue in musique_s's window shape), stopped
# for time at step 4 of 6 (its best by validation so far, best.safetensors), as `kvpacket:qawin`
# on issue 15's sets: MuSiQue first (what it trains for), then HotpotQA and the biography sets
# the default must keep. Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
runs/eval-qwen-run.sh qa-win qawin musique hotpotqa bio10 bio5 heldout
