#!/usr/bin/env bash
# The mixture adapter (runs/qwen-mix, copied to adapters/qwen2.5-0.5b/mix.safetensors when its
# run ends) against full, none and `bio` on the acceptance sets of issue 15: HotpotQA entries
# 50-99 (held out of every training run), MuSiQue (musique_s, n = 50), biographies of 10
# people (n = 100), cheapest first. Rows already in results.jsonl are kept (resumable; full and none are shared
# with runs/eval-qwen-bio.sh and eval-qwen-other.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
kv --data synth:biography:10 --methods full,none,kvpacket=mix --limit 100
kv --data "../shared/data/hotpotqa_train100.json#50..100" --methods full,none,kvpacket=bio,kvpacket=mix --limit 50
kv --data ../shared/data/musique_s.json --methods full,none,kvpacket=bio,kvpacket=mix --limit 50
