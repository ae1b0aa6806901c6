#!/usr/bin/env bash
# The CPU queue for issue 15 (2 cores: one job at a time), each step resumable: finish the
# Qwen2.5 mixture adapter (runs/qwen-mix, committed mid-run in session 13), put its best
# checkpoint (written to adapter.safetensors when the run ends) in place as `mix`, then evaluate it against full, none and `bio`.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[$(date +%H:%M:%S)] $*"; }
runs/qwen-mix/run.sh >> runs/qwen-mix/train.log 2>&1; log "qwen mixture trained"
cp runs/qwen-mix/adapter.safetensors adapters/qwen2.5-0.5b/mix.safetensors
runs/eval-qwen-mix.sh > runs/eval-qwen-mix.log 2>&1; log "qwen mixture evaluated"
