#!/usr/bin/env bash
# Qwen2.5-0.5B beyond biographies: HotpotQA entries 50-99 (held out of every training run) and
# the 2-document needles; full, none, the biography adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./target/release/kvpacket eval --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#50..100" --data synth:niah:2 \
  --methods full,none,kvpacket=bio \
  --limit 50 --out docs/results/issue15/qwen2.5-0.5b
