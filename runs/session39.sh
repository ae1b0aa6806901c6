#!/usr/bin/env bash
# Session 39 (issue 15, item 6): the quality dial with the current default adapter `qahdr`.
# Sessions 17-21 measured `kvpacket=ADAPTER+epic:K` with `bio` and `mix`, older defaults, and on
# MuSiQue only 7 samples. This measures, against the `full`, `full-reversed`, `none`, `qahdr`
# and `epic:16` rows already in docs/results/issue15/qwen2.5-0.5b/results.jsonl (same samples):
#   HotpotQA 50-99 (n = 50): qahdr+epic:16, epic:32, qahdr+epic:32, then epic:64 (where does
#     EPIC on plain packets cross issue 15's 50% KL target?);
#   MuSiQue (musique_s, n = 50): epic:32, qahdr+epic:32 (HotpotQA's better K);
#   10-person biographies (n = 100): qahdr+epic:16, epic:16 (n = 30 so far).
# `full`'s reference answers are cached under ~/.cache/kvpacket/reference and recomputed where
# missing. Resumable: eval skips rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
hotpot="../shared/data/hotpotqa_train100.json#50..100"
kv --data "$hotpot" --limit 50 --methods kvpacket=qahdr+epic:16,epic:32,kvpacket=qahdr+epic:32
kv --data "$hotpot" --limit 50 --methods epic:64
kv --data ../shared/data/musique_s.json --limit 50 --methods epic:32,kvpacket=qahdr+epic:32
kv --data synth:biography:10 --limit 100 --methods kvpacket=qahdr+epic:16,epic:16
