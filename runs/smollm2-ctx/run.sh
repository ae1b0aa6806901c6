#!/usr/bin/env bash
# SmolLM2-135M, issue 15 (session 28): SmolLM2's default `mix` (8+8) with its header made
# context-only, untrained (`adapter init --init-from mix --context-header`): each document is
# still computed after the 8 header rows, but packets keep only the document and trailer rows.
# On Qwen2.5 the same step took `wide` from 0.777 to 0.758 on validation untrained.
# Scored on 10-person biographies from seed 11 (evaluation: seed 0), n = 50, against `mix`:
#   python3 scripts/paired_table.py runs/smollm2-ctx/val/results.jsonl synth:biography:10 kvpacket:mixctx --vs kvpacket:mix
# Session 28: level (first-token KL +0.018 [-0.006, +0.040], gold F1 -0.012 [-0.048, +0.018]),
# so it was not evaluated further and `mix` stays SmolLM2's default.
# Resumable: rerun (eval skips the rows already written).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/smollm2-ctx
kv=./target/release/kvpacket
[ -f $dir/mixctx.safetensors ] || $kv adapter init --model smollm2 --init-from adapters/smollm2/mix.safetensors \
  --header 8 --trailer 8 --context-header --out $dir/mixctx.safetensors
$kv eval --model smollm2 --out $dir/val --data synth:biography:10 --seed 11 --limit 50 \
  --methods kvpacket=mix,kvpacket=$dir/mixctx.safetensors
