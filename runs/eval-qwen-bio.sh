#!/usr/bin/env bash
# Issue 15 acceptance on biographies, Qwen2.5-0.5B: 5 and 10 people (n = 60 each: what 2 cores evaluate in one session) and the
# held-out wordings (10 people, n = 60); full, none, the new biography adapter (the previous
# shipped adapter, stage 4, on the first 39 of biography:5). Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./target/release/kvpacket eval --model qwen2.5-0.5b \
  --data synth:biography:5 --data synth:biography:10 --data synth:biography-heldout:10 \
  --methods full,none,kvpacket=bio \
  --limit 60 --out docs/results/issue15/qwen2.5-0.5b
