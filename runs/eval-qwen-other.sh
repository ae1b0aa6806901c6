#!/usr/bin/env bash
# Qwen2.5-0.5B beyond biographies: HotpotQA entries 50-99 (held out of every training run);
# full, none, the biography adapter and the previous shipped adapter (stage 4). Session 11 ran
# the first 15 (what fit); raise --limit to continue (resumable), and add synth:niah:2.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./target/release/kvpacket eval --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#50..100" \
  --methods full,none,kvpacket=bio,kvpacket=stage4 \
  --limit 15 --out docs/results/issue15/qwen2.5-0.5b
