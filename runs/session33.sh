#!/usr/bin/env bash
# Session 33's evaluations (issue 15), resumable (eval skips rows already written):
# 1. Qwen2.5 MuSiQue (musique_s) to issue 15's n = 50 for `full-reversed` and the default `qamix`
#    (rows `kvpacket:qamix8`), which session 32 stopped at 30;
# 2. SmolLM2's noise floor on QA: `full-reversed` on HotpotQA 50-99 (n = 50) and MuSiQue (the 42
#    samples its other methods have).
set -euo pipefail
cd "$(dirname "$0")/.."
kv=./target/release/kvpacket
$kv eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b --data ../shared/data/musique_s.json \
  --methods full-reversed,kvpacket=runs/qa-mix/qamix8.safetensors --limit 50
$kv eval --model smollm2 --out docs/results/issue15/smollm2 \
  --data "../shared/data/hotpotqa_train100.json#50..100" --methods full-reversed --limit 50
$kv eval --model smollm2 --out docs/results/issue15/smollm2 \
  --data ../shared/data/musique_s.json --methods full-reversed --limit 42
