#!/usr/bin/env bash
# Session 39, after runs/session39.sh (Qwen2.5 rows into issue 15's results unless named):
# (1) MuSiQue with EPIC's 64 tokens a document on plain packets (HotpotQA's best point), n = 50;
# (2) the dial's TTFT in one sitting on an otherwise idle machine: every method on the same 10
#     HotpotQA entries (50-59), one process, into docs/results/issue15/dial-timing (the TTFTs in
#     the main results come from runs sessions apart);
# (3) MuSiQue one step further, EPIC's 128 tokens a document;
# (4) random recomputation at EPIC's shares on HotpotQA 50-99 (22% = epic:32, 42% = epic:64):
#     are the document starts special, or is any recomputed 22% as good?
# (5) the same control on MuSiQue at epic:32's share (5%);
# (6) the same control on SmolLM2, HotpotQA 50-99: EPIC's 32 starts against 22% at random.
# Steps 3-6 were appended while 1-2 had already run. Resumable: eval skips rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
kv() { ./target/release/kvpacket eval "$@"; }
qwen() { kv --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
hotpot="../shared/data/hotpotqa_train100.json#50..100"
musique=../shared/data/musique_s.json
qwen --data $musique --limit 50 --methods epic:64
kv --model qwen2.5-0.5b --out docs/results/issue15/dial-timing \
  --data "../shared/data/hotpotqa_train100.json#50..60" --limit 10 \
  --methods full,none,kvpacket,epic:16,epic:32,epic:64,kvpacket=qahdr+epic:32
qwen --data $musique --limit 50 --methods epic:128
qwen --data "$hotpot" --limit 50 --methods random:0.22,random:0.42
qwen --data $musique --limit 50 --methods random:0.05
kv --model smollm2 --out docs/results/issue15/smollm2 --data "$hotpot" --limit 50 --methods epic:32,random:0.22
