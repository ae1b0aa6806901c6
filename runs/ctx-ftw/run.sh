#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 29): runs/ctx-big's training with ctxwide's own 8-row
# context header, to tell the 32-row header's part from the fresh 9-10-person sets' and the
# first-token weight's. Same samples, seed, schedule and teacher outputs (runs/ctx-big/teacher).
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/ctx-ftw
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 192 --k-min 9 --k-max 10 --questions 8 --batch 12 --epochs 1 --lr 3e-4 \
  --first-token-weight 3 --gen-tokens 16 --init-from adapters/qwen2.5-0.5b/ctxwide.safetensors \
  --header 8 --trailer 16 --val-samples 12 --val-every 2 --patience 3 --seed 7 \
  --teacher-dir runs/ctx-big/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
