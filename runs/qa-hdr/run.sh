#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 35): the one QA lever no run has tried, the header trained on
# QA documents. Every QA run so far froze the context-only header (trained on biographies only,
# in ctx-big / ctx-big2) because the full student costs ~3x a frozen-header one; the bf16
# products of session 34 (`--bf16-products`, ~1.4x) make it affordable on 2 cores.
# From `qamix` (the default, runs/qa-mix's step-8 best) on qa-mix's own samples and validation
# (same data, seed and shape, so qa-mix's teacher outputs are reused: step 0 must reproduce
# its 0.6646), with the 32-row header learning beside the trailer; LR 2e-4, one linear decay
# over 2 epochs of batch 16. Teacher outputs: runs/qa-mix/teacher (not committed; recomputed
# deterministically on a fresh machine, ~45 min). Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-hdr
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data ../shared/data/musique_train100.json \
  --holdout-every 5 --val-samples 30 --samples 96 --k-min 4 --k-max 10 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 2e-4 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --init-from runs/qa-mix/qamix8.safetensors \
  --val-every 2 --patience 3 --seed 5 --bf16-products \
  --teacher-dir runs/qa-mix/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
