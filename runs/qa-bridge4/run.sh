#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 41): does a wider bridge close more of MuSiQue's gap?
# runs/qa-bridge3's best bridge (16 rows, `qabridge6`: MuSiQue first-token KL 13% of the
# none -> full gap, its steps 3 and 6 level on evaluation) grown to 32 rows (its rows
# repeated once, at the next positions), trained on the same QA data, teacher outputs and
# validation as qa-bridge3 (runs/qa-only's). Header and trailer stay qahdr's; LR 2e-3, one
# linear decay over 2 epochs of batch 16 (6 steps); validation every 3 steps. Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-bridge4
musique=../shared/data/musique_train100.json
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data $musique \
  --chunk-tokens 512 --chunk-stride 200 --lowercase-docs --reshape-data $musique --max-doc-tokens 200 \
  --holdout-every 5 --val-samples 24 --samples 48 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 2e-3 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --bridge 32 --freeze-header --freeze-trailer \
  --init-from runs/qa-bridge3/best.safetensors \
  --val-every 3 --patience 3 --seed 8 --bf16-products --grad-checkpoint \
  --teacher-dir runs/qa-only/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
