#!/usr/bin/env bash
# Session 42 (issue 15): the sink without the reading on MuSiQue. `ctxpre` (runs/ctx-header:
# every document computed after the real chat preamble, which takes the first-token sink, and
# no other document; untrained, zero recompute) gained HotpotQA fidelity like `epic:4` and none
# of its KL. The same on musique_s, n = 50, against the rows already in results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b \
  --data ../shared/data/musique_s.json --limit 50 --methods kvpacket=runs/ctx-header/ctxpre.safetensors
