#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 28): an attention temperature over packets, no training.
# `adapter key-scale` multiplies the stored keys of every packet row by s, so the question (and
# every later token) reads them at temperature 1/s; the documents' own rows are computed as
# before. Scored on sets outside every evaluation: 10-person biographies from seed 11
# (evaluation: seed 0) and HotpotQA entries 0-49 (evaluation: 50-99; `ctxwide` never trained on
# QA), 24 samples each, against `ctxwide` unscaled. Results: val/results.jsonl; table:
#   python3 scripts/paired_table.py runs/key-scale/val/results.jsonl DATASET kvpacket:ctxwide-k0.95 --vs kvpacket:ctxwide
# Resumable: rerun (eval skips the rows already written).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/key-scale
kv=./target/release/kvpacket
for s in 1 0.95; do
  a=adapters/qwen2.5-0.5b/ctxwide.safetensors
  if [ $s != 1 ]; then
    a=$dir/ctxwide-k$s.safetensors
    [ -f $a ] || $kv adapter key-scale adapters/qwen2.5-0.5b/ctxwide.safetensors $s --out $a
  fi
  $kv eval --model qwen2.5-0.5b --out $dir/val --data synth:biography:10 --seed 11 --methods kvpacket=$a --limit 24
  $kv eval --model qwen2.5-0.5b --out $dir/val --data "../shared/data/hotpotqa_train100.json#0..50" \
    --methods kvpacket=$a --limit 24
done
