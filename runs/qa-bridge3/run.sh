#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 40): runs/qa-bridge's bridge (before the question; its step-2
# best, validation KL on the biography + QA mixture level with qahdr's) trained further on QA
# only. On HotpotQA 50-99 (n = 50) that step-2 bridge moved first-token KL from qahdr's 0.72 to
# 0.66 (-0.060 [-0.148, +0.005]), while the mixture's validation hid it. Data, shape, seed,
# validation and teacher outputs are runs/qa-only's (HotpotQA 0-49 as evaluated, MuSiQue in
# musique_s's windows; runs/qa-only/teacher is committed). Header and trailer stay qahdr's;
# LR 2e-3, one linear decay over 2 epochs of batch 16 (6 steps); validation every 3 steps.
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-bridge3
musique=../shared/data/musique_train100.json
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data $musique \
  --chunk-tokens 512 --chunk-stride 200 --lowercase-docs --reshape-data $musique --max-doc-tokens 200 \
  --holdout-every 5 --val-samples 24 --samples 48 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 2e-3 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --bridge 16 --freeze-header --freeze-trailer \
  --init-from runs/qa-bridge/best.safetensors \
  --val-every 3 --patience 3 --seed 8 --bf16-products --grad-checkpoint \
  --teacher-dir runs/qa-only/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
