#!/usr/bin/env bash
# Issue 15 on SmolLM2-135M (fidelity; the model is too small for gold F1): biographies of 5 and
# 10 people and the held-out wordings (n = 100 each), the 4-document needles (n = 50, must not
# regress); full, none, the new biography adapters (8+8 and 4+4), the previous shipped adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
# EVAL_WITHOUT_4X4=1: before the 4+4 adapter exists (a later run adds its rows only).
kv=./target/release/kvpacket
four=,kvpacket=bio-4x4; [ -n "${EVAL_WITHOUT_4X4:-}" ] && four=
$kv eval --model smollm2 \
  --data synth:biography:5 --data synth:biography:10 --data synth:biography-heldout:10 \
  --methods full,none,kvpacket=bio${four},kvpacket=nov29 \
  --limit 100 --out docs/results/issue15/smollm2
$kv eval --model smollm2 --data synth:niah \
  --methods full,none,kvpacket=bio,kvpacket=nov29 \
  --limit 50 --out docs/results/issue15/smollm2
