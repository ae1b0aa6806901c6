#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 29): `ctxwide` behind the real preamble.
# The start's context-only header is Qwen2.5's own 58-token preamble (ctxpre, runs/ctx-header)
# followed by `ctxwide`'s 8 trained header rows, and its trailer is ctxwide's: every document is
# computed as if it followed the real preamble and then ctxwide's header. Packets keep only the
# document and trailer rows, so they cost what ctxwide's cost at request time (packing pays the
# 66 header rows once). Scored untrained against ctxwide on qwen-wide's validation
# (`train ... --score`, 96 questions of 7-10-person sets, seed 4's validation split).
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/pre-ctxwide
[ -f $dir/start.safetensors ] || python3 scripts/adapter_concat.py $dir/start.safetensors \
  --header runs/ctx-header/ctxpre.safetensors --header adapters/qwen2.5-0.5b/ctxwide.safetensors \
  --trailer adapters/qwen2.5-0.5b/ctxwide.safetensors
[ -f $dir/score.txt ] || ./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 192 --k-min 7 --k-max 10 --questions 8 --batch 12 --epochs 1 --lr 3e-4 \
  --gen-tokens 16 --header 8 --trailer 16 --val-samples 12 --val-every 2 --seed 4 \
  --run-dir "$(mktemp -d)" --score $dir/start.safetensors \
  --score adapters/qwen2.5-0.5b/ctxwide.safetensors | tee $dir/score.txt.part
[ -f $dir/score.txt ] || mv $dir/score.txt.part $dir/score.txt
