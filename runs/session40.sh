#!/usr/bin/env bash
# Session 40 (issue 15): bridges on top of `qahdr`, against the rows already in
# docs/results/issue15/qwen2.5-0.5b/results.jsonl (same samples):
#   `qabridge` (runs/qa-bridge's step-2 best) and `qabridge3` (runs/qa-bridge3's step-3 best),
#   on HotpotQA 50-99 (held out of every training run), n = 50, then `qabridge3` on MuSiQue
#   (musique_s), n = 50, and on 10-person biographies, n = 100 (`qabridge` there too).
# The adapters are copies of the runs' best.safetensors under adapters/qwen2.5-0.5b/ (their
# labels in the rows are `kvpacket:qabridge`, `kvpacket:qabridge3`). `full`'s reference answers
# are cached under ~/.cache/kvpacket/reference and recomputed where missing. Resumable: eval
# skips rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
kv --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods kvpacket=qabridge,kvpacket=qabridge3
kv --data ../shared/data/musique_s.json --limit 50 --methods kvpacket=qabridge3,kvpacket=qabridge
kv --data synth:biography:10 --limit 100 --methods kvpacket=qabridge3,kvpacket=qabridge
