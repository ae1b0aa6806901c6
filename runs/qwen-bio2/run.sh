#!/usr/bin/env bash
# Qwen2.5-0.5B biography adapter, continued (issue 15): from the `bio` adapter (96 steps of
# batch 4, validation KL still falling when its LR reached 0), on fresh biography sets (seed 2)
# of 4-10 people (the 10-person target is the open one; 5 people already met it), batch 8, one
# linear decay from 1e-3 over 2 epochs of 256 sets (64 steps, 4,096 question passes, ~4-5 h on
# 2 cores with the teacher outputs). Resumable across sessions: rerun this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qwen-bio2
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 256 --k-min 4 --k-max 10 --questions 8 --batch 8 --epochs 2 --lr 1e-3 \
  --gen-tokens 16 --init-from adapters/qwen2.5-0.5b/bio.safetensors --val-samples 8 --val-every 4 --seed 2 \
  --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
