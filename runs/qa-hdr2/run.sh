#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 35): runs/qa-hdr continued on fresh draws. qa-hdr (header and
# trailer learning on qa-mix's biography + QA-reasoning mixture) lowered validation KL from
# 0.6646 to 0.6372, still falling slowly when its LR reached 0, and beat `qamix` on every
# biography set and on HotpotQA's KL. Same mixture and shape, seed 6: fresh biography sets (and
# validation sets), the same 120 QA entries (whose teacher outputs are qa-mix's, same keys);
# LR 1.5e-4, one linear decay over 2 epochs of batch 16. Teacher outputs: runs/qa-mix/teacher
# (not committed; recomputed deterministically on a fresh machine). Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-hdr2
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data ../shared/data/musique_train100.json \
  --holdout-every 5 --val-samples 30 --samples 96 --k-min 4 --k-max 10 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 1.5e-4 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --init-from runs/qa-hdr/adapter.safetensors \
  --val-every 2 --patience 3 --seed 6 --bf16-products \
  --teacher-dir runs/qa-mix/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
