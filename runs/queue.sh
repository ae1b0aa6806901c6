#!/usr/bin/env bash
# Session 10's CPU queue (2 cores: one job at a time): after the Qwen2.5 biography run, its
# evaluation on biographies, then on HotpotQA and needles, then the SmolLM2 runs and their
# evaluation, then the Qwen2.5 QA run (long; resumable). Each step is resumable, so rerunning
# this script continues where it stopped.
set -uo pipefail
cd "$(dirname "$0")/.."
log() { echo "[$(date +%H:%M:%S)] $*"; }
while pgrep -f "kvpacket train --model qwen2.5-0.5b --data synth:biography" >/dev/null; do sleep 30; done
runs/qwen-bio/run.sh > runs/qwen-bio/final.out 2>&1 && cp runs/qwen-bio/best.safetensors adapters/qwen2.5-0.5b/bio.safetensors
log "qwen bio trained"
pkill -f "out /tmp/qwen-refs" || true
runs/eval-qwen-bio.sh > runs/eval-qwen-bio.log 2>&1; log "qwen bio evaluated"
runs/eval-qwen-other.sh > runs/eval-qwen-other.log 2>&1; log "qwen hotpotqa and needles evaluated"
runs/smollm2-bio/run.sh > runs/smollm2-bio/train.out 2>&1 && cp runs/smollm2-bio/best.safetensors adapters/smollm2/bio.safetensors
runs/smollm2-bio-4x4/run.sh > runs/smollm2-bio-4x4/train.out 2>&1 && cp runs/smollm2-bio-4x4/best.safetensors adapters/smollm2/bio-4x4.safetensors
log "smollm2 trained"; runs/eval-smollm2-bio.sh > runs/eval-smollm2-bio.log 2>&1; log "smollm2 evaluated"
runs/qwen-qa/run.sh > runs/qwen-qa/train.out 2>&1; log "qwen qa trained"
