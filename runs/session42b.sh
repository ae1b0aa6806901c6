#!/usr/bin/env bash
# Session 42 (issue 15): is EPIC's gain on plain packets the removal of each document's
# first-token attention sink? Recompute only the first 4 tokens of every document but the
# first, on plain packets and on `qahdr`'s (whose context-only header already takes the sink),
# HotpotQA 50-99, n = 50, against the rows already in results.jsonl (epic:16 closes 34% of the
# KL gap, qahdr+epic:16 23%). Resumable: eval skips rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods epic:4,kvpacket=qahdr+epic:4
# The same 4-token repair on MuSiQue (musique_s), n = 50, on plain packets.
./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b \
  --data ../shared/data/musique_s.json --limit 50 --methods epic:4
