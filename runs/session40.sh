#!/usr/bin/env bash
# Session 40 (issue 15): `qabridge`, qahdr with a 16-row bridge (runs/qa-bridge), against the
# rows already in docs/results/issue15/qwen2.5-0.5b/results.jsonl (same samples):
#   1. HotpotQA 50-99 (held out of every training run), n = 50;
#   2. 10-person biographies, n = 100 (must not lose qahdr's 64%);
#   3. MuSiQue (musique_s), n = 50.
# The adapter is copied to adapters/qwen2.5-0.5b/qabridge.safetensors first (its label in the
# rows is `kvpacket:qabridge`). `full`'s reference answers are cached under
# ~/.cache/kvpacket/reference and recomputed where missing. Resumable: eval skips rows already
# written.
set -euo pipefail
cd "$(dirname "$0")/.."
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
kv --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods kvpacket=qabridge
kv --data synth:biography:10 --limit 100 --methods kvpacket=qabridge
kv --data ../shared/data/musique_s.json --limit 50 --methods kvpacket=qabridge
