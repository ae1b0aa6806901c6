#!/usr/bin/env bash
# Issue 15 acceptance on biographies, Qwen2.5-0.5B: 5 and 10 people (n = 100 each), then the
# held-out wordings (10 people, n = 60: what 2 cores fit in the session); full, none, the new
# biography adapter (the previous shipped adapter, stage 4, ran on the first 39 of
# biography:5). Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --methods full,none,kvpacket=bio \
  --out docs/results/issue15/qwen2.5-0.5b "$@"; }
kv --data synth:biography:5 --data synth:biography:10 --limit 100
kv --data synth:biography-heldout:10 --limit 60
