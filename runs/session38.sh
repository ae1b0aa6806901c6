#!/usr/bin/env bash
# Session 38 (issue 15): trains runs/qa-only (a QA-only adapter in the window shape, from
# `qawin`) to its end, then evaluates its result as `kvpacket:qaonly` on the QA sets it trains
# for, MuSiQue first, then HotpotQA 50-99 and 10-person biographies (what a domain adapter
# gives up). Resumable: rerun (training resumes from its checkpoint; eval skips rows it has).
set -euo pipefail
cd "$(dirname "$0")/.."
runs/qa-only/run.sh
runs/eval-qwen-run.sh qa-only qaonly musique hotpotqa bio10
