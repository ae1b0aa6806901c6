#!/usr/bin/env bash
# Issue 15 on SmolLM2-135M (fidelity; the model is too small for gold F1). Resumable: eval skips
# the rows already in results.jsonl. In order of what the issue needs first:
# 1. the 4-document needles (n = 50, must not regress): none, the new 8+8 biography adapter (and
#    the 4+4 and mixture ones once trained), the previous shipped adapter (nov29);
# 2. biographies of 5 and 10 people and the held-out wordings, BIO_LIMIT samples each (default
#    100): full, none, bio, nov29 (and bio-4x4, mix);
# 3. with FULL_NEEDLES=1, `full` on the needles (~20 s a sample), for fidelity.
# An adapter joins once its file is in adapters/smollm2/ (a later run adds its rows only).
set -euo pipefail
cd "$(dirname "$0")/.."
kv=./target/release/kvpacket
out=docs/results/issue15/smollm2
extra=; for a in bio-4x4 mix; do [ -f adapters/smollm2/$a.safetensors ] && extra+=,kvpacket=$a; done
$kv eval --model smollm2 --data synth:niah \
  --methods none,kvpacket=bio${extra},kvpacket=nov29 --limit 50 --out $out
$kv eval --model smollm2 \
  --data synth:biography:5 --data synth:biography:10 --data synth:biography-heldout:10 \
  --methods full,none,kvpacket=bio${extra},kvpacket=nov29 --limit "${BIO_LIMIT:-100}" --out $out
if [ -n "${FULL_NEEDLES:-}" ]; then
  $kv eval --model smollm2 --data synth:niah --methods full --limit 50 --out $out
fi
