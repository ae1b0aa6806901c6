#!/usr/bin/env bash
# Session 41 (issue 15): `qabridge6`, runs/qa-bridge3's finished best (step 6, validation
# first-token KL 0.4517; `qabridge3` is its step 3, 0.4660), against the rows already in
# docs/results/issue15/qwen2.5-0.5b/results.jsonl (same samples): HotpotQA 50-99 (held out of
# every training run), n = 50; MuSiQue (musique_s), n = 50; 10-person biographies, n = 100.
# The adapter is a copy of runs/qa-bridge3/best.safetensors under adapters/qwen2.5-0.5b/.
# Resumable: eval skips rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
kv --data ../shared/data/musique_s.json --limit 50 --methods kvpacket=qabridge6
kv --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods kvpacket=qabridge6
kv --data synth:biography:10 --limit 100 --methods kvpacket=qabridge6
# The dial on top of the bridge: EPIC's first 32 tokens of every document but the first,
# recomputed on `qabridge6`'s packets (its bridge is prefilled after the repair).
kv --data ../shared/data/musique_s.json --limit 50 --methods kvpacket=qabridge6+epic:32
kv --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods kvpacket=qabridge6+epic:32
# Could a bridge be the default? Both bridge adapters on 5-person biographies too.
kv --data synth:biography:5 --limit 100 --methods kvpacket=qabridge3,kvpacket=qabridge6
kv --data synth:biography-heldout:10 --limit 60 --methods kvpacket=qabridge3
