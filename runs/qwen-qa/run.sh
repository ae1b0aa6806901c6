#!/usr/bin/env bash
# Qwen2.5-0.5B multi-hop QA adapter (issue 15): HotpotQA entries 0-49 (50-99 are held out for
# evaluation) and MuSiQue-Ans train, every paragraph of an entry (supporting ones included), the
# entry's question, teacher answers of up to 16 tokens; every 10th entry is validation.
# Long on 2 cores (~30 s per sample): resumable across sessions, rerun this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qwen-qa
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b \
  --data ../shared/data/hotpotqa_train100.json#0..50 --data ../shared/data/musique_train100.json \
  --samples 128 --questions 1 --batch 32 --epochs 4 --lr 2e-3 \
  --gen-tokens 16 --init text --val-samples 8 --val-every 1 --seed 1 \
  --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
