#!/usr/bin/env bash
# Session 42 (issue 15): `prehdr` = runs/qa-pre/init.safetensors, untrained: ctxpre's 58-row
# real-preamble context-only header + qahdr's 16-row trailer (no key factors). It scored 0.4458
# on qa-bridge3's QA validation at step 0, below every trained QA adapter (qabridge6 0.4517,
# plain packets 0.591). Evaluated against the rows already in results.jsonl (same samples):
# MuSiQue (musique_s), n = 50; HotpotQA 50-99 (held out of every training run), n = 50.
# Resumable: eval skips rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=${TMPDIR:-/tmp}/kvpacket-session42; mkdir -p "$tmp"
cp runs/qa-pre/init.safetensors "$tmp/prehdr.safetensors"
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
kv --data ../shared/data/musique_s.json --limit 50 --methods kvpacket=$tmp/prehdr.safetensors
kv --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods kvpacket=$tmp/prehdr.safetensors
