#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 28): `ctxwide` (8+16, context-only header, Qwen2.5's default)
# continued on qwen-mix's mixture of biographies (2-10 people) and QA entries (HotpotQA 0-49
# + MuSiQue train, every paragraph), 96 samples of up to 8 questions, whose teacher outputs are
# committed in runs/qwen-mix/teacher (no teacher cost on a fresh machine). `wide`'s own QA
# mixture (session 26) undid its biography gain; the header rows its packets kept may have been
# why, and ctxwide's packets keep none. Batch 16, 2 epochs (12 steps), LR 3e-4, validation
# (qwen-mix's: held-out biography seeds and QA entries) every 2 steps, patience 3.
# Then: runs/eval-qwen-run.sh ctx-mix ctxmix hotpotqa bio10. Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/ctx-mix
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --data ../shared/data/hotpotqa_train100.json#0..50 --data ../shared/data/musique_train100.json \
  --samples 96 --k-min 2 --k-max 10 --questions 8 --max-docs 0 --batch 16 --epochs 2 --lr 3e-4 \
  --gen-tokens 16 --init-from adapters/qwen2.5-0.5b/ctxwide.safetensors --header 8 --trailer 16 \
  --val-samples 8 --val-every 2 --patience 3 --seed 3 \
  --run-dir $dir --teacher-dir runs/qwen-mix/teacher --out $dir/adapter.safetensors "${resume[@]}"
