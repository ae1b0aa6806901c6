#!/usr/bin/env bash
# SmolLM2-135M mixture adapter with the issue-15 recipe (the candidate for SmolLM2's default):
# from the biography adapter `bio`, biography sets of 2-10 people (8 questions each) mixed with
# HotpotQA entries 0-49 (50-99 are held out for evaluation) and MuSiQue-Ans train entries, every
# paragraph, the entry's question plus 7 about single paragraphs by title (--title-questions);
# ~60% biography sets. 192 sets x 2 epochs, 4 sets = 32 questions a step, one linear decay from
# 5e-3: 96 steps, 3,072 question passes. Validation mixes held-out biography seeds and every
# 10th QA entry (its own question), in the training mixture's proportion. Resumable across sessions: rerun this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/smollm2-mix
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model smollm2 --data synth:biography \
  --data ../shared/data/hotpotqa_train100.json#0..50 --data ../shared/data/musique_train100.json \
  --samples 192 --k-min 2 --k-max 10 --questions 8 --title-questions --batch 4 --epochs 2 \
  --lr 5e-3 --gen-tokens 16 --init-from adapters/smollm2/bio.safetensors --val-samples 16 \
  --val-every 4 --seed 1 --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
