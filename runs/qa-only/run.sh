#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 38): a QA-only adapter in the evaluation's shape. `qawin`
# (runs/qa-win) trained MuSiQue in musique_s's window shape beside biographies and stopped level
# with `none` on MuSiQue; session 8's QA-only adapter on windows (`qwen-long2`) reached 16% of
# the KL gap there. This run drops the biographies: from `qawin` (runs/qa-win's step-6 result),
# header and trailer learning, on HotpotQA 0-49 as its evaluation has it (titled paragraphs) and
# MuSiQue-Ans train entries re-cut into 512-token windows every 200 tokens, lowercased
# (`--reshape-data`), with --reasoning. LR 5e-4 (a domain adapter: nothing else to keep), one
# linear decay over 2 epochs of 48 samples, batch 16; validation on 24 held-out QA samples.
# Teacher outputs: runs/qa-only/teacher (not committed; recomputed deterministically on a fresh
# machine). Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-only
musique=../shared/data/musique_train100.json
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data $musique \
  --chunk-tokens 512 --chunk-stride 200 --lowercase-docs --reshape-data $musique --max-doc-tokens 200 \
  --holdout-every 5 --val-samples 24 --samples 48 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 5e-4 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --init-from runs/qa-win/best.safetensors \
  --val-every 3 --patience 3 --seed 8 --bf16-products --grad-checkpoint \
  --teacher-dir $dir/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
