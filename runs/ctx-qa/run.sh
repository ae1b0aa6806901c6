#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 27): a QA trailer on top of the preamble context header.
# Untrained, `ctxpre` (Qwen2.5's own 58-token preamble as a context-only header: every document
# computed as if it followed the real preamble, packets keep only the document rows) reads
# fidelity 0.569 on HotpotQA 50-99 against plain packets' 0.480 (+0.089 [-0.010, +0.191]), the
# only zero-recomputation start that moves QA towards `full`. Here an 8-row trailer (text start)
# learns on top of it with the header frozen (`--freeze-header`: document rows are constants,
# only trailers and question tails take the differentiable path): qwen-qa2's entries
# (HotpotQA 0-49 + MuSiQue-Ans train, every paragraph, each entry's own question), validation on
# every 5th of HotpotQA 0-49 (session 23's split), batch 32, one linear decay from 1e-3 over 3
# epochs, first answer token weighted 2, patience 4. Teacher outputs: runs/qwen-mix/teacher.
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/ctx-qa
pre=$'<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nRead the passages below and answer the question after them. Give only the answer, in at most five words, without repeating the question.\n\nPassages:\n'
[ -f $dir/start.safetensors ] || ./target/release/kvpacket adapter init --model qwen2.5-0.5b \
  --init text --header-text "$pre" --header 58 --trailer 8 --context-header --out $dir/start.safetensors
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data ../shared/data/musique_train100.json \
  --val-data "../shared/data/hotpotqa_train100.json#0..50" --holdout-every 5 --val-samples 10 \
  --samples 135 --questions 1 --max-docs 0 --batch 32 --epochs 3 --lr 1e-3 --first-token-weight 2 \
  --header 58 --trailer 8 --freeze-header --patience 4 \
  --gen-tokens 16 --init-from $dir/start.safetensors --val-every 1 --seed 5 \
  --run-dir $dir --teacher-dir runs/qwen-mix/teacher --out $dir/adapter.safetensors "${resume[@]}"
