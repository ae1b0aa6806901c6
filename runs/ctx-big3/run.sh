#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (prepared in session 30, not started): `ctxbig2` (the default since
# session 30) for one epoch over 192 fresh sets of 5-10 people (seed 13: new sets, new
# validation), per-head key factors still learned (gain 10), LR 2e-4 with one linear decay.
# ctx-big2's validation was still falling at its end (0.683 -> 0.682 -> 0.679); fresh sets rather
# than a third pass over seed 7's, and 5-10 people rather than 9-10, so the 5-person and
# held-out-wording results (level with `ctxwide`) are not traded for the 10-person gain.
# The teacher outputs (~17 min) go to teacher/ here (not committed). Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/ctx-big3
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 192 --k-min 5 --k-max 10 --questions 8 --batch 12 --epochs 1 --lr 2e-4 \
  --first-token-weight 3 --gen-tokens 16 --init-from adapters/qwen2.5-0.5b/ctxbig2.safetensors \
  --header 32 --trailer 16 --learn-key-scale --key-scale-gain 10 \
  --val-samples 12 --val-every 2 --patience 3 --seed 13 \
  --teacher-dir $dir/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
