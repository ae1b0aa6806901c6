#!/usr/bin/env bash
# Qwen2.5-0.5B mixture adapter (issue 15): from the biography adapter `bio`, on biography sets
# (2-10 people, 8 questions each) mixed with multi-hop QA entries (HotpotQA 0-49, MuSiQue-Ans
# train; every paragraph, the entry's question); 96 biography entries + 135 QA entries are
# shuffled and the first 96 drawn (~40% biographies). Batch 8, one linear decay from 5e-4 over
# 2 epochs (24 steps). Validation mixes held-out biography seeds and every 10th QA entry.
# Resumable: rerun this script. Teacher outputs are kept in $dir/teacher (committed), so a fresh
# machine does not recompute them.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qwen-mix
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --data ../shared/data/hotpotqa_train100.json#0..50 --data ../shared/data/musique_train100.json \
  --samples 96 --k-min 2 --k-max 10 --questions 8 --max-docs 0 --batch 8 --epochs 2 --lr 5e-4 \
  --gen-tokens 16 --init-from adapters/qwen2.5-0.5b/bio.safetensors --val-samples 8 --val-every 4 --seed 3 \
  --run-dir $dir --teacher-dir $dir/teacher --out $dir/adapter.safetensors "${resume[@]}"
