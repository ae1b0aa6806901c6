#!/usr/bin/env bash
# Session 41 (issue 15): is a wider bridge better even untrained? `qabridge6`'s 16 bridge rows
# repeated to 32 (x2) and 64 (x4) rows (`adapter init --init-from ... --bridge N`: the added
# rows are copies, at the next positions; packets stay qahdr's). runs/qa-bridge4's step-0
# validation (x2) was 0.4334 against qabridge6's 0.4517. Evaluated on MuSiQue (musique_s) and
# HotpotQA 50-99, n = 50 each, against the rows in docs/results/issue15/qwen2.5-0.5b/.
# Resumable: eval skips rows already written; the adapters are rewritten deterministically.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=${TMPDIR:-/tmp}/kvpacket-session41; mkdir -p "$tmp"
for x in 2 4; do
  ./target/release/kvpacket adapter init --model qwen2.5-0.5b --header 32 --trailer 16 --bridge $((16 * x)) \
    --init-from adapters/qwen2.5-0.5b/qabridge6.safetensors --out "$tmp/qabridge6x$x.safetensors"
done
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
m=kvpacket=$tmp/qabridge6x2.safetensors,kvpacket=$tmp/qabridge6x4.safetensors
kv --data ../shared/data/musique_s.json --limit 50 --methods $m
kv --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods $m
