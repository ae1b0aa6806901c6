#!/usr/bin/env bash
# Packet storage precision, Qwen2.5-0.5B with the `bio` adapter (issue 15's f32-vs-f16 check,
# issue 17's q8 fidelity): the samples of runs/eval-qwen-bio.sh and eval-qwen-other.sh
# (biographies of 5 and 10 people, first 20 each; HotpotQA 50-64) with packets stored as f32
# and as q8 instead of f16. Those rows are labelled kvpacket:bio-f32 / kvpacket:bio-q8 and
# joined with the f16 rows of docs/results/issue15/qwen2.5-0.5b into
# docs/results/issue15/kv-dtype/results.jsonl. Resumable. Tables:
#   python3 scripts/paired_table.py docs/results/issue15/kv-dtype/results.jsonl DATASET \
#     full,none,kvpacket:bio,kvpacket:bio-f32,kvpacket:bio-q8 --vs kvpacket:bio
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/results/issue15/kv-dtype
for dt in f32 q8; do
  kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --methods kvpacket=bio --kv-dtype $dt \
    --out $out/$dt "$@"; }
  kv --data synth:biography:5 --data synth:biography:10 --limit 20
  kv --data "../shared/data/hotpotqa_train100.json#50..100" --limit 15
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows, keys = [], set()
for dt in ["f32", "q8"]:
    for l in open(f"{out}/{dt}/results.jsonl"):
        if l.strip():
            r = json.loads(l)
            r["method"] = f"kvpacket:bio-{dt}"
            keys.add((r["dataset"], r["sample"]))
            rows.append(json.dumps(r) + "\n")
# The f16, full and none rows of the same samples.
f16 = [l for l in open("docs/results/issue15/qwen2.5-0.5b/results.jsonl")
       if l.strip() and (json.loads(l)["dataset"], json.loads(l)["sample"]) in keys]
open(f"{out}/results.jsonl", "w").writelines(f16 + rows)
PY
