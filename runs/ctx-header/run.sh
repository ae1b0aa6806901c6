#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 27): context-only headers, untrained.
# - ctxpre: the header is the token embeddings of Qwen2.5's own preamble (chat template prefix
#   + instruction, 58 tokens), context-only, no trailer. Each document is then computed exactly
#   as `full` computes the first document after the preamble, and the packet keeps only the
#   document's rows: a request's cache is the preamble followed by documents that each saw the
#   real preamble, with no spurious attention sink at each packet's start.
# - pre-wide (scripts/adapter_concat.py): ctxpre's header with `wide`'s 16 trailer rows.
# - wide-ctx: `wide` with its header made context-only (runs/ctx-wide's start).
# Scored on qwen-wide's validation (`train ... --score`); ctxpre evaluated on HotpotQA 50-99.
# Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/ctx-header
pre=$'<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nRead the passages below and answer the question after them. Give only the answer, in at most five words, without repeating the question.\n\nPassages:\n'
[ -f $dir/ctxpre.safetensors ] || ./target/release/kvpacket adapter init --model qwen2.5-0.5b \
  --init text --header-text "$pre" --trailer-text unused --header 58 --trailer 0 --context-header \
  --out $dir/ctxpre.safetensors
[ -f $dir/pre-wide.safetensors ] || python3 scripts/adapter_concat.py $dir/pre-wide.safetensors \
  --header $dir/ctxpre.safetensors --trailer adapters/qwen2.5-0.5b/wide.safetensors
[ -f $dir/wide-ctx.safetensors ] || ./target/release/kvpacket adapter init --model qwen2.5-0.5b \
  --init-from adapters/qwen2.5-0.5b/wide.safetensors --header 8 --trailer 16 --context-header \
  --out $dir/wide-ctx.safetensors
./target/release/kvpacket train --model qwen2.5-0.5b --data synth:biography \
  --samples 192 --k-min 7 --k-max 10 --questions 8 --batch 12 --epochs 2 --lr 3e-4 \
  --gen-tokens 16 --header 8 --trailer 16 --val-samples 12 --val-every 2 --seed 4 \
  --run-dir "$(mktemp -d)" --score $dir/pre-wide.safetensors --score $dir/wide-ctx.safetensors \
  --score $dir/ctxpre.safetensors | tee $dir/score.txt
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
kv --data "../shared/data/hotpotqa_train100.json#50..100" --methods kvpacket=$dir/ctxpre.safetensors --limit 50
