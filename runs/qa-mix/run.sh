#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 32): the QA gain of `runs/qa-cot` without its biography cost.
# qa-cot's best (step 8, `qacot8`: HotpotQA 50-99 first-token KL -0.106 [-0.171, -0.047] against
# `ctxbig2`, but 10-person biographies -0.032 gold F1) continues on a mixture: fresh biography
# sets of 4-10 people (8 questions a set) and the same HotpotQA 0-49 + MuSiQue-Ans train entries
# with --reasoning (bare question + think-step-by-step, teacher up to 96 tokens), about half
# each (96 sets against 120 entries in the draw pool). Header frozen (ctxbig2's, context-only),
# trailer learns; LR 2e-4 with one linear decay over 2 epochs, batch 16. Validation: qa-cot's 30
# held-out QA entries plus biography sets in the training proportion (30 draws).
# Teacher outputs go to teacher/ here (not committed; the QA ones are qa-cot's, the same keys).
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-mix
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data ../shared/data/musique_train100.json \
  --holdout-every 5 --val-samples 30 --samples 96 --k-min 4 --k-max 10 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 2e-4 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --freeze-header --init-from $dir/start.safetensors \
  --val-every 2 --patience 3 --seed 5 \
  --teacher-dir $dir/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
