#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 42): the trained bridge, moved after the question.
# runs/qa-bridge5 trained 16 question-aware rows (`--bridge-place after-question`) from newline
# embeddings and barely moved (validation 0.5955 -> 0.5818; plain packets 0.591). Here the
# start is qabridge6's trained rows (runs/qa-bridge3, validation 0.4517 before the question),
# moved after the task text with `adapter init --move-bridge` (written to init.safetensors);
# header and trailer stay qahdr's (frozen). Data, seed, teacher outputs and validation are
# qa-bridge3's (runs/qa-only's; the plain level is reused by digest). LR 3e-3, one linear
# decay over 2 epochs of batch 16 (6 steps); validation every 3 steps. Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-bridge6
musique=../shared/data/musique_train100.json
[ -f $dir/init.safetensors ] || ./target/release/kvpacket adapter init --model qwen2.5-0.5b \
  --init-from adapters/qwen2.5-0.5b/qabridge6.safetensors --header 32 --trailer 16 \
  --bridge 16 --bridge-place after-question --move-bridge --out $dir/init.safetensors
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data $musique \
  --chunk-tokens 512 --chunk-stride 200 --lowercase-docs --reshape-data $musique --max-doc-tokens 200 \
  --holdout-every 5 --val-samples 24 --samples 48 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 3e-3 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --bridge 16 --bridge-place after-question --freeze-header --freeze-trailer \
  --init-from $dir/init.safetensors \
  --val-every 3 --patience 3 --seed 8 --bf16-products --grad-checkpoint \
  --teacher-dir runs/qa-only/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
