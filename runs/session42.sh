#!/usr/bin/env bash
# Session 42 (issue 15): the question-aware bridge. runs/qa-bridge6's best (qabridge6's rows
# moved after the question and trained there) against the rows already in
# docs/results/issue15/qwen2.5-0.5b/results.jsonl (same samples): MuSiQue (musique_s), n = 50;
# HotpotQA 50-99 (held out of every training run), n = 50. Rows are labelled
# `kvpacket:qabridgeq`: the committed best is copied under that name to a scratch folder.
# Resumable: eval skips rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=${TMPDIR:-/tmp}/kvpacket-session42; mkdir -p "$tmp"
cp runs/qa-bridge6/best.safetensors "$tmp/qabridgeq.safetensors"
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
kv --data ../shared/data/musique_s.json --limit 50 --methods kvpacket=$tmp/qabridgeq.safetensors
kv --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods kvpacket=$tmp/qabridgeq.safetensors
# What recompute budget MuSiQue's KL target needs: epic:128 (16% of the tokens recomputed)
# closes 35% of the gap; one step up the dial.
kv --data ../shared/data/musique_s.json --limit 50 --methods epic:256
