#!/usr/bin/env bash
# The main job on the default model: fetch SmolLM2, pack the 10 documents of the first MuSiQue
# sample with the adapter shipped for the model (adapters/), then answer its question with
# `full` and with `kvpacket` (packets reused, zero recomputation) and print both answers with
# their TTFT.
# Usage: scripts/demo.sh [MODEL]   (MODEL defaults to smollm2)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-smollm2}
data=../shared/data/musique_s.json
cargo build --release --quiet
kv=./target/release/kvpacket
$kv models fetch "$model" >/dev/null
home=${KVPACKET_HOME:-$HOME/.cache/kvpacket}
mkdir -p "$home"
adapter=default
python3 -c "import json,sys; json.dump(json.load(open('$data'))[:1], sys.stdout)" > "$home/demo-sample.json"
echo "== packing the 10 documents of musique_s.json sample 0"
$kv pack --model "$model" --adapter "$adapter" --docs "$home/demo-sample.json"
for method in full kvpacket; do
  echo "== $method"
  $kv ask --model "$model" --method "$method" --adapter "$adapter" --docs "$data" --sample 0 2>&1
done
