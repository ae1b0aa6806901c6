#!/usr/bin/env bash
# The CPU queue for issue 15 (2 cores: one job at a time), each step resumable (rerun this
# script; eval skips the rows it already wrote; a finished training run exits at once):
# 1. SmolLM2's evaluation (runs/eval-smollm2-bio.sh: needles, then biographies at n = 50 a
#    dataset) of the 8+8 biography adapter (runs/smollm2-bio),
#    and on HotpotQA / MuSiQue (runs/eval-smollm2-qa.sh, the check before SmolLM2's default
#    changes; n = 20 first, MuSiQue's `full` costs ~40 s a sample, then n = 50 after step 2);
# 2. the 4+4 adapter's training (runs/smollm2-bio-4x4), then the same evaluations, which add
#    only its rows (the issue's 4+4 vs 8+8 check);
# 3. the quality dial on HotpotQA 50-99 (runs/eval-qwen-dial-qa.sh, ~50 s a sample; n = 29 in
#    session 18);
# 4. Qwen2.5's in-domain multi-hop QA adapter (runs/qwen-qa, 8 questions a document pass,
#    ~2.5 h);
# 5. Qwen2.5's biography adapter continued on 4-10-person sets (runs/qwen-bio2, ~4-5 h), for
#    the open 10-person target;
# 6. SmolLM2's biographies to n = 100 and `full` on the needles (fidelity), when time is left.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[$(date +%H:%M:%S)] $*"; }
EVAL_WITHOUT_4X4=1 BIO_LIMIT=50 runs/eval-smollm2-bio.sh >> runs/eval-smollm2-bio.log 2>&1
log "smollm2 8+8 evaluated (n = 50)"
LIMIT=20 runs/eval-smollm2-qa.sh >> runs/eval-smollm2-qa.log 2>&1; log "smollm2 8+8 evaluated on hotpotqa / musique (n = 20)"
runs/smollm2-bio-4x4/run.sh >> runs/smollm2-bio-4x4/train.log 2>&1
cp runs/smollm2-bio-4x4/adapter.safetensors adapters/smollm2/bio-4x4.safetensors
log "smollm2-bio-4x4 trained"
BIO_LIMIT=50 runs/eval-smollm2-bio.sh >> runs/eval-smollm2-bio.log 2>&1; log "smollm2 4+4 evaluated (n = 50)"
runs/eval-smollm2-qa.sh >> runs/eval-smollm2-qa.log 2>&1; log "smollm2 4+4 evaluated on hotpotqa / musique"
runs/eval-qwen-dial-qa.sh >> runs/eval-qwen-dial-qa.log 2>&1; log "qwen dial on hotpotqa evaluated"
runs/qwen-qa/run.sh >> runs/qwen-qa/train.log 2>&1; log "qwen-qa trained"
runs/qwen-bio2/run.sh >> runs/qwen-bio2/train.log 2>&1; log "qwen-bio2 trained"
BIO_LIMIT=100 FULL_NEEDLES=1 runs/eval-smollm2-bio.sh >> runs/eval-smollm2-bio.log 2>&1
log "smollm2 adapters evaluated (n = 100, full on needles)"
