#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 30): a second epoch for `ctxbig` (runs/ctx-big, whose
# validation was still falling when its LR reached 0: 0.735 -> 0.734 -> 0.731 over its last 4
# steps), with per-head key factors learned alongside (gain 10, as runs/ctx-ks2).
# The same 192 sets of 9-10 people as ctx-big (seed 7; its teacher outputs in
# runs/ctx-big/teacher are reused, regenerated when missing), so its validation numbers
# continue ctx-big's. A second pass over the same samples is the reference recipe's way (it
# runs 30 epochs over 256 samples). LR 2e-4 with one linear decay, validation every 2 steps.
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/ctx-big2
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 192 --k-min 9 --k-max 10 --questions 8 --batch 12 --epochs 1 --lr 2e-4 \
  --first-token-weight 3 --gen-tokens 16 --init-from runs/ctx-big/adapter.safetensors \
  --header 32 --trailer 16 --learn-key-scale --key-scale-gain 10 \
  --val-samples 12 --val-every 2 --patience 3 --seed 7 \
  --teacher-dir runs/ctx-big/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
