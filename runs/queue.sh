#!/usr/bin/env bash
# The CPU queue for issue 15 (2 cores: one job at a time), each step resumable (rerun this
# script): the last MuSiQue samples of the mixture evaluation, then SmolLM2's biography adapters
# with the issue-15 recipe (8+8 and 4+4 soft tokens), each put in place under adapters/smollm2/
# when its run ends, then their evaluation (runs/eval-smollm2-bio.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[$(date +%H:%M:%S)] $*"; }
while pgrep -f runs/eval-qwen-mix.sh > /dev/null; do sleep 30; done
runs/eval-qwen-mix.sh >> runs/eval-qwen-mix.log 2>&1; log "qwen mixture evaluated"
for run in smollm2-bio smollm2-bio-4x4; do
  runs/$run/run.sh >> runs/$run/train.log 2>&1
  cp runs/$run/adapter.safetensors adapters/smollm2/${run#smollm2-}.safetensors
  log "$run trained"
done
runs/eval-smollm2-bio.sh >> runs/eval-smollm2-bio.log 2>&1; log "smollm2 adapters evaluated"
