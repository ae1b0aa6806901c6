#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (session 26): an untrained one-row header that is the chat template's
# first token, `<|im_start|>`, the token full attention's sink sits on. EPIC (recomputing each
# document's first 16 tokens in context) closes a third of plain packets' first-token KL gap on
# HotpotQA: the spurious sink at each packet's start is much of what goes wrong there. Does
# giving every packet the real sink token as its first row do the same with no training?
# Evaluated on HotpotQA 50-99 (n = 50) like the trained adapters. Resumable: rerun.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=runs/sink-header
[ -f $dir/sink1.safetensors ] || ./target/release/kvpacket adapter init --model qwen2.5-0.5b \
  --init text --header-text "<|im_start|>" --trailer-text "unused" --header 1 --trailer 0 \
  --out $dir/sink1.safetensors
./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#50..100" --methods kvpacket=$dir/sink1.safetensors --limit 50
