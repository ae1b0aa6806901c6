#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 41): a bridge that reads the question. runs/qa-bridge3's
# bridge sits before the question, so its rows summarise the documents without knowing what
# is asked (MuSiQue first-token KL 13-14% of the none -> full gap; 32 or 64 rows no better).
# Here 16 new rows sit after the task text, inside the user's turn (`--bridge-place
# after-question`): they attend to every document and to the question, and the first answer
# token is still read from the assistant header. Start: newline embeddings, the closest to
# nothing inside the user's turn (a first start from " Think about how the passages
# connect." scored validation 1.790 at step 0, far above plain packets' 0.591: the model
# answered the instruction); header and trailer stay qahdr's (frozen). Data, seed, teacher outputs and
# validation are qa-bridge3's (runs/qa-only's; its plain level is reused by digest).
# LR 2e-3, one linear decay over 2 epochs of batch 16 (6 steps); validation every 3 steps.
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/qa-bridge5
musique=../shared/data/musique_train100.json
resume=(); [ -f $dir/checkpoint.safetensors ] && resume=(--resume)
exec ./target/release/kvpacket train --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#0..50" --data $musique \
  --chunk-tokens 512 --chunk-stride 200 --lowercase-docs --reshape-data $musique --max-doc-tokens 200 \
  --holdout-every 5 --val-samples 24 --samples 48 --questions 8 --reasoning \
  --max-docs 0 --batch 16 --epochs 2 --lr 2e-3 --first-token-weight 3 --gen-tokens 96 \
  --header 32 --trailer 16 --bridge 16 --bridge-place after-question \
  --bridge-text $'\n' --freeze-header --freeze-trailer \
  --init-from adapters/qwen2.5-0.5b/qahdr.safetensors \
  --val-every 3 --patience 3 --seed 8 --bf16-products --grad-checkpoint \
  --teacher-dir runs/qa-only/teacher --run-dir $dir --out $dir/adapter.safetensors "${resume[@]}"
