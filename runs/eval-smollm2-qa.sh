#!/usr/bin/env bash
# SmolLM2-135M on multi-document QA (issue 15; adapters/README.md's rule: a new default must not
# be worse than the old one there): HotpotQA entries 50-99 (held out of every training run) and
# MuSiQue (musique_s), n = 50 each: full, none, the biography adapters (8+8, and 4+4 and the
# mixture once trained) and the shipped default `nov29`. Resumable: eval skips the rows already written.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=; for a in bio-4x4 mix; do [ -f adapters/smollm2/$a.safetensors ] && extra+=,kvpacket=$a; done
exec ./target/release/kvpacket eval --model smollm2 \
  --data "../shared/data/hotpotqa_train100.json#50..100" --data ../shared/data/musique_s.json \
  --methods full,none,kvpacket=bio${extra},kvpacket=nov29 --limit "${LIMIT:-50}" \
  --out docs/results/issue15/smollm2
