#!/bin/bash
# Seconds per training sample of the full student (header and trailer learn) against
# --freeze-header (trailer only), on the same evaluation-shaped samples (8-10 windows of
# 512 tokens), one optimizer step of BATCH samples each, same machine, same run.
# Usage: scripts/bench_freeze_header.sh [MODEL] [BATCH]   (teacher outputs are cached)
set -euo pipefail
MODEL=${1:-qwen2.5-0.5b}
BATCH=${2:-2}
BIN=${KVPACKET_BIN:-target/release/kvpacket}
DATA=../shared/data/musique_train100.json
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "| student | seconds per sample | loss of the step |"
echo "|---|---|---|"
for mode in full freeze-header; do
  flag=(); [ "$mode" = freeze-header ] && flag=(--freeze-header)
  "$BIN" train --model "$MODEL" --data "$DATA" --samples "$BATCH" --batch "$BATCH" --epochs 1 \
    --k-min 8 --k-max 10 --chunk-tokens 512 --distractors --gen-tokens 32 --seed 2 \
    --init-from "adapters/$MODEL/default.safetensors" "${flag[@]}" --run-dir "$TMP/$mode" --out "$TMP/$mode.safetensors" \
    >/dev/null 2>&1
  python3 - "$TMP/$mode/log.jsonl" "$mode" <<'PY'
import json, sys
line = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(f"| {sys.argv[2]} | {1 / line['samples_per_s']:.1f} | {line['loss']:.4f} |")
PY
done
