#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 29): `ctxwide` plus a key factor per layer and kv head
# (24 x 2 = 48 numbers), learned with the header and trailer (`--learn-key-scale`): packets store
# their keys times the factor, so each head of the question reads the documents at its own
# attention temperature, at no request-time cost. Session 28's single fixed scale (0.95) helped
# HotpotQA's first token slightly and hurt biographies; learned per head, training picks where.
# Same samples, seed, schedule and teacher outputs as runs/ctx-ftw (ctxwide, first-token weight 3,
# fresh 9-10-person sets, seed 7), so the two differ only in the factors. Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/ctx-ks
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 192 --k-min 9 --k-max 10 --questions 8 --batch 12 --epochs 1 --lr 3e-4 \
  --first-token-weight 3 --gen-tokens 16 --init-from adapters/qwen2.5-0.5b/ctxwide.safetensors \
  --header 8 --trailer 16 --learn-key-scale --key-scale-gain 100 --val-samples 12 --val-every 2 --patience 3 --seed 7 \
  --teacher-dir runs/ctx-big/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
