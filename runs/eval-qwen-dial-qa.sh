#!/usr/bin/env bash
# Issue 15's quality dial on multi-hop QA, Qwen2.5-0.5B: HotpotQA entries 50-99 (held out of
# every training run), EPIC's 16 recomputed tokens a document on top of the default adapter's
# packets (`mix`) and on plain packets, against the `full`, `none` and `mix` rows already in
# results.jsonl (n = 50). `full`'s answer is the fidelity reference (cached on disk, recomputed
# where missing: ~12 s a sample). Resumable: eval skips the rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./target/release/kvpacket eval --model qwen2.5-0.5b \
  --data "../shared/data/hotpotqa_train100.json#50..100" \
  --methods kvpacket=mix+epic:16,epic:16 \
  --limit "${LIMIT:-50}" --out docs/results/issue15/qwen2.5-0.5b
