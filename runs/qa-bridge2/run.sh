#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 40): runs/qa-bridge's 16-row bridge on top of `qahdr`, but
# after the task prompt (after the assistant header): the first answer token is read from the
# bridge's last row, which attends to the question and to every packet in order. runs/qa-bridge
# (the bridge before the question) moved validation KL from qahdr's 0.637 to 0.638 at step 2 and
# 0.653 at step 4, and was stopped. New rows start from the embedding of "\n" (the text they
# replace in the assistant turn is nothing; a newline is the closest to it). Otherwise as
# runs/qa-bridge: qa-mix's samples, validation and teacher outputs; header and trailer frozen;
# LR 2e-3, one linear decay over 2 epochs of batch 16; validation every 3 steps, patience 2.
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-bridge2
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data ../shared/data/musique_train100.json \
  --holdout-every 5 --val-samples 30 --samples 96 --k-min 4 --k-max 10 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 2e-3 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --bridge 16 --bridge-place after-prompt --bridge-text $'\n' --freeze-header --freeze-trailer \
  --init-from adapters/qwen2.5-0.5b/qahdr.safetensors \
  --val-every 3 --patience 2 --seed 5 --bf16-products \
  --teacher-dir runs/qa-mix/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
