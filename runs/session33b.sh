#!/usr/bin/env bash
# After runs/session33.sh: SmolLM2 MuSiQue (musique_s) to issue 15's n = 50 for full, none, the
# default `mix` and `full-reversed` (session 26 stopped at 42). Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
while pgrep -f runs/session33.sh >/dev/null; do sleep 20; done
exec ./target/release/kvpacket eval --model smollm2 --out docs/results/issue15/smollm2 \
  --data ../shared/data/musique_s.json --methods full,none,kvpacket=mix,full-reversed --limit 50
