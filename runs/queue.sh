#!/usr/bin/env bash
# Session 12's CPU queue (2 cores: one job at a time), each step resumable: the packet
# precision check (f32 and q8 against f16), then the Qwen2.5 mixture adapter's training.
# Next session: runs/eval-qwen-mix.sh once runs/qwen-mix has finished.
set -uo pipefail
cd "$(dirname "$0")/.."
log() { echo "[$(date +%H:%M:%S)] $*"; }
runs/check-kv-dtype.sh > runs/check-kv-dtype.log 2>&1; log "packet precision checked"
runs/qwen-mix/run.sh > runs/qwen-mix/train.log 2>&1; log "qwen mixture trained"
