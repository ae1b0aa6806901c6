#!/usr/bin/env bash
# The CPU queue for issue 15 (2 cores: one job at a time), each step resumable (rerun this
# script; eval skips the rows it already wrote): SmolLM2's 8+8 biography adapter is trained
# (runs/smollm2-bio, done in session 17); its evaluation first (runs/eval-smollm2-bio.sh:
# biographies, held-out wordings, needles), then the 4+4 adapter's training, then the same
# evaluation again, which adds only the 4+4 rows.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[$(date +%H:%M:%S)] $*"; }
runs/smollm2-bio/run.sh >> runs/smollm2-bio/train.log 2>&1
cp runs/smollm2-bio/adapter.safetensors adapters/smollm2/bio.safetensors
EVAL_WITHOUT_4X4=1 runs/eval-smollm2-bio.sh >> runs/eval-smollm2-bio.log 2>&1; log "smollm2 8+8 evaluated"
runs/smollm2-bio-4x4/run.sh >> runs/smollm2-bio-4x4/train.log 2>&1
cp runs/smollm2-bio-4x4/adapter.safetensors adapters/smollm2/bio-4x4.safetensors
log "smollm2-bio-4x4 trained"
runs/eval-smollm2-bio.sh >> runs/eval-smollm2-bio.log 2>&1; log "smollm2 adapters evaluated"
