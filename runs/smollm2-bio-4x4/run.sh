#!/usr/bin/env bash
# SmolLM2-135M biography adapter with 4+4 soft tokens (the 8+8 check of issue 15), the recipe of runs/qwen-bio (issue 15). Resumable: rerun it.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/smollm2-bio-4x4
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model smollm2 --data synth:biography \
  --samples 192 --k-min 2 --k-max 10 --questions 8 --batch 4 --epochs 2 --lr 1e-2 \
  --gen-tokens 16 --init text --header 4 --trailer 4 --val-samples 8 --val-every 4 --seed 1 \
  --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
