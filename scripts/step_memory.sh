#!/usr/bin/env bash
# Measures what one student step takes in memory against what `train` estimates before the run
# (src/train/memory.rs): one-sample runs on biography sets and on MuSiQue windows, with and
# without layer recomputation, printing a markdown table of rows, scored rows, the estimate
# (beyond what the process holds before the first step: weights, teacher outputs), what it
# held then, its peak (`peak_rss_gb` of log.jsonl) and the step's measured share (peak − held;
# a lower bound where an earlier phase peaked higher).
# Needs ~10 GB free. Usage: scripts/step_memory.sh [MODEL...] (default: smollm2 qwen2.5-0.5b).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
models=${*:-smollm2 qwen2.5-0.5b}
echo "| model | sample | recompute | rows | scored | estimate GB | held GB | peak GB | step GB (peak − held) |"
echo "|---|---|---|---|---|---|---|---|---|"
one() { # MODEL NAME CKPT DATA-FLAGS...
  local m=$1 name=$2 ck=$3; shift 3
  local flags=("$@"); [ "$ck" = yes ] && flags+=(--grad-checkpoint)
  local dir=$work/$m-$name-$ck
  ./target/release/kvpacket train --model "$m" --samples 1 --batch 1 --epochs 1 --val-samples 0 --seed 3 \
    --questions 8 --gen-tokens 96 --run-dir "$dir" --teacher-dir "$work/teacher" --out "$dir/a.safetensors" \
    "${flags[@]}" > "$dir.log" 2>&1 || { echo "| $m | $name | $ck | failed: see $dir.log |"; return; }
  local line; line=$(grep -m1 "largest training sample" "$dir.log")
  local rows scored est held peak
  rows=$(sed -E 's/.*: ([0-9]+) rows.*/\1/' <<<"$line")
  scored=$(sed -E 's/.*\(([0-9]+) scored\).*/\1/' <<<"$line")
  est=$(sed -E 's/.*about ([0-9.]+) GB.*/\1/' <<<"$line")
  held=$(sed -E 's/.*holds ([0-9.]+) GB now.*/\1/' <<<"$line")
  peak=$(grep -o '"peak_rss_gb":[0-9.]*' "$dir/log.jsonl" | tail -1 | cut -d: -f2)
  printf "| %s | %s | %s | %s | %s | %s | %s | %.2f | %.2f |\n" "$m" "$name" "$ck" "$rows" "$scored" "$est" "$held" \
    "$peak" "$(awk "BEGIN { print $peak - $held }")"
}
for m in $models; do
  for k in 2 10; do
    one "$m" "biographies, $k people" no --data synth:biography --k-min $k --k-max $k
  done
  musique=(--data "../shared/data/musique_train100.json#2..3" --chunk-tokens 512 --chunk-stride 200
    --lowercase-docs --max-docs 0 --holdout-every 1000 --reasoning)
  one "$m" "MuSiQue windows" no "${musique[@]}"
  one "$m" "MuSiQue windows" yes "${musique[@]}"
done
