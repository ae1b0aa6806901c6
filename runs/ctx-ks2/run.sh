#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 29): runs/ctx-ks with the key factors learned 10x slower
# (--key-scale-gain 10: ln(factor) moves by up to 0.003 a step at LR 3e-4). At gain 100 they
# moved ±10% in 4 steps and validation KL rose from 0.804 to 0.856 (stopped at step 6).
# Same samples, seed, schedule and teacher outputs as runs/ctx-ks and runs/ctx-ftw. Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/ctx-ks2
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 192 --k-min 9 --k-max 10 --questions 8 --batch 12 --epochs 1 --lr 3e-4 \
  --first-token-weight 3 --gen-tokens 16 --init-from adapters/qwen2.5-0.5b/ctxwide.safetensors \
  --header 8 --trailer 16 --learn-key-scale --key-scale-gain 10 --val-samples 12 --val-every 2 --patience 3 --seed 7 \
  --teacher-dir runs/ctx-big/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
