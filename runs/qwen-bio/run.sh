#!/usr/bin/env bash
# Qwen2.5-0.5B biography adapter (issue 15). Resumable: rerun this script; it continues from
# the checkpoint in this folder (teacher outputs missing on this machine are recomputed).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qwen-bio
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 192 --k-min 2 --k-max 10 --questions 8 --batch 4 --epochs 2 --lr 2e-3 \
  --gen-tokens 16 --init text --val-samples 8 --val-every 4 --seed 1 \
  --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
