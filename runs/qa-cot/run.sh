#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 31): QA with long teacher answers. Every QA run so far
# (qwen-qa, qwen-qa2, mix, ctx-qa, ...) distilled bare answers: ~5 teacher tokens per entry,
# ~700 per epoch over 135 entries, where the reference's HotpotQA/MuSiQue adapters learn from
# chain-of-thought teacher answers of up to 512 tokens. Here each training entry (HotpotQA
# 0-49 + MuSiQue-Ans train, every paragraph) asks its own question twice over one document
# pass: bare, and with --reasoning's request to think step by step first (~70 teacher tokens).
# From `ctxbig2` (the default), header frozen (its packets' document rows are constants: ~3x
# cheaper per sample), trailer and question tails learn; LR 3e-4, one linear decay, 3 epochs
# of 120 entries, batch 16. Validation: every 5th entry of both files (30), bare questions.
# Teacher outputs go to teacher/ here (not committed). Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-cot
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data ../shared/data/musique_train100.json \
  --holdout-every 5 --val-samples 30 --samples 120 --questions 1 --reasoning --max-docs 0 \
  --batch 16 --epochs 3 --lr 3e-4 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --freeze-header --init-from adapters/qwen2.5-0.5b/ctxbig2.safetensors \
  --val-every 2 --patience 3 --seed 5 \
  --teacher-dir $dir/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
