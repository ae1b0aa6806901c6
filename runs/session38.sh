#!/usr/bin/env bash
# Session 38 (issue 15): trains runs/qa-only (a QA-only adapter in the window shape, from
# `qawin`) to its end, then evaluates its result as `kvpacket:qaonly` on the QA sets it trains
# for, MuSiQue first, then HotpotQA 50-99 and 10-person biographies (what a domain adapter
# gives up). When no step beat its start by validation, the result is `qawin` itself, already
# evaluated, and nothing is evaluated. Resumable: rerun (training resumes from its checkpoint;
# eval skips rows it has).
set -euo pipefail
cd "$(dirname "$0")/.."
runs/qa-only/run.sh
fp() { ./target/release/kvpacket adapter show "$1" 2>/dev/null | grep -m1 '"fingerprint"'; }
if [ "$(fp runs/qa-only/adapter.safetensors)" = "$(fp adapters/qwen2.5-0.5b/qawin.safetensors)" ]; then
  echo "runs/qa-only: no step beat its start (qawin) by validation; nothing to evaluate"
  exit 0
fi
runs/eval-qwen-run.sh qa-only qaonly musique hotpotqa bio10
