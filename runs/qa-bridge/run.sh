#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 40): a 16-row bridge on top of `qahdr` (the default). The
# QA gap on this model lies between the packets (session 39: the document starts reading the
# documents before them, in order), which no packet can hold. A bridge is computed at request
# time after every packet, so it can read them together, in order, at the cost of 16 more
# prompt rows and no document token recomputed. Header and trailer stay qahdr's (so do its
# packets); only the bridge learns, on qa-mix's samples and validation (same data, seed and
# shape: qa-mix's teacher outputs are reused; step 0 must reproduce qahdr's validation KL).
# LR 2e-3 (new rows, 12 steps), one linear decay over 2 epochs of batch 16. Teacher outputs:
# runs/qa-mix/teacher (not committed; recomputed deterministically on a fresh machine,
# ~45 min). Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-bridge
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data ../shared/data/musique_train100.json \
  --holdout-every 5 --val-samples 30 --samples 96 --k-min 4 --k-max 10 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 2e-3 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --bridge 16 --freeze-header --freeze-trailer \
  --init-from adapters/qwen2.5-0.5b/qahdr.safetensors \
  --val-every 2 --patience 3 --seed 5 --bf16-products \
  --teacher-dir runs/qa-mix/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
