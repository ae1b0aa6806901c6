#!/usr/bin/env bash
# Qwen2.5-0.5B: does a larger trailer close more of the 10-person gap? (issue 15, session 25)
# From bio3 (the default, 8+8), more training at the same size has stopped helping: on
# runs/qwen-bio5's validation (12 sets of 7-10 people, plain packets 1.369) bio3 reads 0.795 and
# 10 steps of new sets at LR 1.5e-4 read 0.797-0.806; runs/qwen-bio4 was flat likewise. Here the
# trailer grows to 16: bio3's 8 trailer rows, then copies of them (`--init-from` with a larger
# --trailer), so the header, the documents and the first 8 trailer rows start exactly as bio3's.
# Same samples as qwen-bio5 (their teacher outputs are the same files), 2 epochs of 192 sets at
# 12 sets a step (32 steps, ~2 min a step on 2 cores with validation every 2), LR 3e-4 (bio3's).
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qwen-wide
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 192 --k-min 7 --k-max 10 --questions 8 --batch 12 --epochs 2 --lr 3e-4 \
  --gen-tokens 16 --init-from runs/qwen-bio3/adapter.safetensors --header 8 --trailer 16 \
  --val-samples 12 --val-every 2 --seed 4 \
  --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
