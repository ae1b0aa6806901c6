#!/usr/bin/env bash
# Evaluates a Qwen2.5 training run's adapter: `runs/eval-qwen-run.sh RUN NAME` copies
# runs/RUN/adapter.safetensors (the best checkpoint by validation; best.safetensors, the best so
# far, for a run stopped early) to adapters/qwen2.5-0.5b/NAME.safetensors, then evaluates
# `kvpacket=NAME` against the `full`, `none` and `mix` rows already in
# docs/results/issue15/qwen2.5-0.5b (results.jsonl and archive.jsonl), on issue 15's acceptance
# sets, biographies first (what the biography runs train for): 10- and 5-person biographies
# (n = 100 each), HotpotQA entries 50-99 (held out of every training run), MuSiQue (musique_s,
# n = 50) and 10-person biographies in wording no training used (n = 60).
# `runs/eval-qwen-run.sh RUN NAME SET...` evaluates only the named sets (bio10 bio5 hotpotqa
# musique heldout), in that order. Resumable: eval skips the rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
run=$1 name=$2; shift 2
sets=${*:-bio10 bio5 hotpotqa musique heldout}
# A run stopped before its end is evaluated at its best checkpoint so far.
best=runs/$run/adapter.safetensors; [ -f $best ] || best=runs/$run/best.safetensors
[ -f $best ] || { echo "runs/$run has no checkpoint"; exit 1; }
[ -f adapters/qwen2.5-0.5b/$name.safetensors ] || cp $best adapters/qwen2.5-0.5b/$name.safetensors
kv() { ./target/release/kvpacket eval --model qwen2.5-0.5b --out docs/results/issue15/qwen2.5-0.5b "$@"; }
for set in $sets; do
  case $set in
    bio10) kv --data synth:biography:10 --methods kvpacket=$name --limit 100 ;;
    bio5) kv --data synth:biography:5 --methods kvpacket=$name --limit 100 ;;
    hotpotqa) kv --data "../shared/data/hotpotqa_train100.json#50..100" --methods kvpacket=$name --limit 50 ;;
    musique) kv --data ../shared/data/musique_s.json --methods kvpacket=$name --limit 50 ;;
    heldout) kv --data synth:biography-heldout:10 --methods kvpacket=$name --limit 60 ;;
    *) echo "unknown set $set"; exit 1 ;;
  esac
done
