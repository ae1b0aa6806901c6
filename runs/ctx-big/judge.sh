#!/usr/bin/env bash
# Qwen2.5-0.5B, issue 15 (sessions 29-30): runs/ctx-big, ctx-ks, ctx-ftw, ctx-ks2 and ctx-big2 judged by gold F1
# before any evaluation set sees them: 10-person biographies from seed 11 (evaluation: seed 0;
# training: seed 7's draws, offset), n = 50, against `ctxwide`, `full` and `none`; each run that
# has finished (its adapter.safetensors, the best by validation, copied under a label). Table:
#   python3 scripts/paired_table.py runs/ctx-big/val/results.jsonl synth:biography:10 kvpacket:ctxbig,kvpacket:ctxks,kvpacket:ctxftw,kvpacket:ctxks2,kvpacket:ctxbig2 --vs kvpacket:ctxwide
# Resumable: rerun (eval skips the rows already written).
set -euo pipefail
cd "$(dirname "$0")/../.."
methods=full,none,kvpacket=adapters/qwen2.5-0.5b/ctxwide.safetensors
for run in ctx-big ctx-ks ctx-ftw ctx-ks2 ctx-big2; do
  label=${run/-/}
  [ -f runs/$run/adapter.safetensors ] || continue
  cp -n runs/$run/adapter.safetensors runs/$run/$label.safetensors
  methods+=,kvpacket=runs/$run/$label.safetensors
done
./target/release/kvpacket eval --model qwen2.5-0.5b --out runs/ctx-big/val --data synth:biography:10 \
  --seed 11 --limit 50 --methods "$methods"
