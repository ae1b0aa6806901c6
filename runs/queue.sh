#!/usr/bin/env bash
# Session 11's CPU queue (2 cores: one job at a time): the Qwen2.5 biography adapter's
# evaluation on biographies, then on HotpotQA and needles. Each step is resumable, so rerunning
# this script continues where it stopped. (The SmolLM2 runs and the Qwen2.5 QA run, in
# runs/smollm2-bio*, runs/qwen-qa, wait for a later session.)
set -uo pipefail
cd "$(dirname "$0")/.."
log() { echo "[$(date +%H:%M:%S)] $*"; }
runs/eval-qwen-bio.sh > runs/eval-qwen-bio.log 2>&1; log "qwen bio evaluated"
runs/eval-qwen-other.sh > runs/eval-qwen-other.log 2>&1; log "qwen hotpotqa and needles evaluated"
