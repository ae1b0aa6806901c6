#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 36): MuSiQue in the evaluation's shape. Every issue-15 QA
# run trained on MuSiQue-Ans's short titled paragraphs, while musique_s's passages are
# lowercased, untitled, overlapping 512-token windows; the one run on windows of that shape
# (session 8, header and trailer, before issue 15's recipe) was also the one whose first-token
# KL on musique_s beat `none` with an interval excluding 0 (-0.094 [-0.145, -0.044]).
# From `qahdr` (the default, runs/qa-hdr's step-12 best), header and trailer learning, on
# biography sets of 4-10 people (8 questions a set), HotpotQA 0-49 as its evaluation has it
# (titled paragraphs; the same samples as qa-mix, so its teacher outputs are reused) and
# MuSiQue-Ans train entries re-cut into 512-token windows every 200 tokens and lowercased
# (`--reshape-data`), with --reasoning. LR 2e-4, one linear decay over 2 epochs of batch 16.
# Teacher outputs: runs/qa-mix/teacher (not committed; recomputed deterministically on a
# fresh machine). Resumable: rerun.
# Layers are recomputed in the backward (--grad-checkpoint): a 9-window sample (~4,600 tokens)
# took the full student past 23 GB, and the first attempt was killed for memory in step 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-win
musique=../shared/data/musique_train100.json
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data $musique \
  --chunk-tokens 512 --chunk-stride 200 --lowercase-docs --reshape-data $musique --max-doc-tokens 200 \
  --holdout-every 5 --val-samples 30 --samples 48 --k-min 4 --k-max 10 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 2e-4 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --init-from runs/qa-hdr/best.safetensors \
  --val-every 2 --patience 3 --seed 5 --bf16-products --grad-checkpoint \
  --teacher-dir runs/qa-mix/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
