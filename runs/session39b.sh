#!/usr/bin/env bash
# Session 39, after runs/session39.sh: (1) MuSiQue with EPIC's 64 tokens a document on plain
# packets (HotpotQA's best point of the dial), n = 50, into issue 15's results; (2) the dial's
# TTFT measured in one sitting on an otherwise idle machine: every method on the same 10 HotpotQA
# entries (50-59), one process, into docs/results/issue15/dial-timing (the TTFTs in the main
# results come from runs sessions apart). Resumable: eval skips rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b "$@"; }
kv --out docs/results/issue15/qwen2.5-0.5b --data ../shared/data/musique_s.json --limit 50 --methods epic:64
kv --out docs/results/issue15/dial-timing --data "../shared/data/hotpotqa_train100.json#50..60" --limit 10 \
  --methods full,none,kvpacket,epic:16,epic:32,epic:64,kvpacket=qahdr+epic:32
# (3) added after (1)-(2) had run: MuSiQue's dial one step further, EPIC's 128 tokens a document.
kv --out docs/results/issue15/qwen2.5-0.5b --data ../shared/data/musique_s.json --limit 50 --methods epic:128
# (4) added last: random recomputation at EPIC's shares on HotpotQA (22% = epic:32, 42% =
# epic:64): are the document starts special, or is any recomputed 22% as good?
kv --out docs/results/issue15/qwen2.5-0.5b --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 \
  --methods random:0.22,random:0.42
# (5) the same control on MuSiQue at epic:32's share (5%).
kv --out docs/results/issue15/qwen2.5-0.5b --data ../shared/data/musique_s.json --limit 50 --methods random:0.05
# (6) the same control on SmolLM2, HotpotQA 50-99: EPIC's 32 starts against 22% at random.
./target/release/kvpacket eval --model smollm2 --out docs/results/issue15/smollm2 \
  --data "../shared/data/hotpotqa_train100.json#50..100" --limit 50 --methods epic:32,random:0.22
