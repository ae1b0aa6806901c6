#!/usr/bin/env bash
# Qwen2.5-0.5B biography continuation of the shipped default (issue 15, session 23): from `mix`
# (on runs/qwen-bio2's validation sets first-token KL 0.804 against `bio`'s 0.815; plain packets
# 1.442), at a third of qwen-bio2's LR: qwen-bio2 (LR 1e-3, from `bio`) moved away from its start
# (0.815 -> 0.862 -> 0.850 at steps 4 / 8). Same samples as qwen-bio2 (biography sets of 4-10
# people, seed 2, 8 questions a set; their teacher outputs are the same files), batch 8 sets =
# 64 questions a step, one linear decay from 3e-4 over 2 epochs of 256 sets (64 steps, ~1.5 min
# a step on 2 cores once the teacher outputs exist; ~70 min of teacher on a fresh machine).
# The 10-person target is the open biography one. Resumable: rerun this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qwen-bio3
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 256 --k-min 4 --k-max 10 --questions 8 --batch 8 --epochs 2 --lr 3e-4 \
  --gen-tokens 16 --init-from adapters/qwen2.5-0.5b/mix.safetensors --val-samples 8 --val-every 4 --seed 2 \
  --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
