#!/usr/bin/env bash
# The own-question QA adapter (runs/qwen-qa2, copied to adapters/qwen2.5-0.5b/qa2.safetensors
# when its run ends: the best checkpoint by validation) against the `full`, `none` and `mix`
# rows already in results.jsonl, on issue 15's acceptance sets: HotpotQA entries 50-99 (held
# out of every training run), MuSiQue (musique_s, n = 50), and 10-person biographies (n = 100:
# what a QA-only continuation costs there). Resumable: eval skips the rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f runs/qwen-qa2/adapter.safetensors ] || { echo "runs/qwen-qa2 has not finished"; exit 1; }
[ -f adapters/qwen2.5-0.5b/qa2.safetensors ] || cp runs/qwen-qa2/adapter.safetensors adapters/qwen2.5-0.5b/qa2.safetensors
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
kv --data "../shared/data/hotpotqa_train100.json#50..100" --methods kvpacket=qa2 --limit 50
kv --data ../shared/data/musique_s.json --methods kvpacket=qa2 --limit 50
kv --data synth:biography:10 --methods kvpacket=qa2 --limit 100
