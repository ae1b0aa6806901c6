#!/usr/bin/env bash
# Session 42 (issue 15), against the rows already in docs/results/issue15/qwen2.5-0.5b/
# results.jsonl (same samples): MuSiQue (musique_s), n = 50; HotpotQA 50-99 (held out of every
# training run), n = 50. Each adapter is copied under its row label to a scratch folder:
# - `qabridgeq` = runs/qa-bridge6/best.safetensors: qabridge6's bridge moved after the question
#   and trained there;
# - `prehdr` = runs/qa-pre/init.safetensors, untrained: ctxpre's 58-row real-preamble
#   context-only header + qahdr's 16-row trailer (no key factors); validation 0.4458 at step 0.
# Resumable: eval skips rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=${TMPDIR:-/tmp}/kvpacket-session42; mkdir -p "$tmp"
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
for pair in qabridgeq=runs/qa-bridge6/best.safetensors prehdr=runs/qa-pre/init.safetensors; do
  name=${pair%%=*}
  cp "${pair#*=}" "$tmp/$name.safetensors"
  kv --data ../shared/data/musique_s.json --limit 50 --methods kvpacket=$tmp/$name.safetensors
  kv --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods kvpacket=$tmp/$name.safetensors
done
# What recompute budget MuSiQue's KL target needs: epic:128 (20% of the tokens recomputed)
# closes 35% of the gap; one step up the dial.
kv --data ../shared/data/musique_s.json --limit 50 --methods epic:256
