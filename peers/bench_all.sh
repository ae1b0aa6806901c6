#!/usr/bin/env bash
# Speed of kvpacket against its peers on one GGUF, in one sitting (run on a quiet machine):
# llama.cpp's llama-bench (-t 2), PyTorch f32 (2 threads; forward+backward with and without
# gradient checkpointing) and `kvpacket bench prefill` (with its bf16-products prefill rows where
# the CPU has AVX512-BF16).
# Prefill and llama.cpp's decode are the median of 3 timed runs in every peer. Prints a markdown
# table with kvpacket's ratio to each peer.
# Usage: peers/bench_all.sh [MODEL]   (MODEL: smollm2 | qwen2.5-0.5b; needs peers/build and peers/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-smollm2}
kv=./target/release/kvpacket
cargo build --release --quiet
gguf=$($kv models fetch "$model")
tmp=$(mktemp -d)
peers/build/llama.cpp/build/bin/llama-bench -m "$gguf" -t 2 -p 512,2048,4096 -n 64 -r 3 -o json > "$tmp/llama.json" 2>/dev/null
peers/venv/bin/python peers/bench_torch.py "$gguf" 2>/dev/null | tail -1 > "$tmp/torch.json"
$kv bench prefill --model "$model" --json > "$tmp/kv.json"
python3 - "$tmp" "$model" <<'PY'
import json, sys
d, model = sys.argv[1], sys.argv[2]
ll = json.load(open(f"{d}/llama.json"))
med = lambda r: sorted(r["samples_ts"])[len(r["samples_ts"]) // 2]  # median of -r 3, as the others
llama = {"prefill": {str(r["n_prompt"]): med(r) for r in ll if r["n_prompt"] > 0},
         "decode": next(med(r) for r in ll if r["n_gen"] > 0)}
torch = json.load(open(f"{d}/torch.json"))
kv = json.load(open(f"{d}/kv.json"))
print(f"model: {model}, 2 threads\n")
print("| measure | kvpacket | llama.cpp | PyTorch f32 | kvpacket / llama.cpp | kvpacket / PyTorch |")
print("|---|---|---|---|---|---|")
for n in ["512", "2048", "4096"]:
    k, l, t = kv["prefill_tok_s"][n], llama["prefill"][n], torch["prefill_tok_s"][n]
    print(f"| prefill {n} tok/s | {k:.0f} | {l:.0f} | {t:.0f} | {k/l:.2f} | {k/t:.2f} |")
bf16 = kv.get("prefill_bf16_tok_s", {})  # CPUs with AVX512-BF16 only
for n in [n for n in ["512", "2048", "4096"] if n in bf16]:
    k, l, t = bf16[n], llama["prefill"][n], torch["prefill_tok_s"][n]
    print(f"| prefill {n} tok/s, bf16 products | {k:.0f} | {l:.0f} | {t:.0f} | {k/l:.2f} | {k/t:.2f} |")
k, l, t = kv["decode_tok_s"], llama["decode"], torch["decode_tok_s"]
print(f"| decode tok/s | {k:.1f} | {l:.1f} | {t:.1f} | {k/l:.2f} | {k/t:.2f} |")
k, t = kv["fwd_bwd_1000_s"], torch["fwd_bwd_1000_s"]
print(f"| fwd+bwd 1000 tokens s (lower is better) | {k:.2f} | – | {t:.2f} | – | {t/k:.2f} (speed) |")
kc, tc = kv["fwd_bwd_ckpt_1000_s"], torch["fwd_bwd_ckpt_1000_s"]
print(f"| fwd+bwd checkpointed s (lower is better) | {kc:.2f} | – | {tc:.2f} | – | {tc/kc:.2f} (speed) |")
for key, name in [("fwd_bwd_peak_mb", "fwd+bwd peak RSS MB"), ("fwd_bwd_ckpt_peak_mb", "fwd+bwd checkpointed peak RSS MB")]:
    k, t = kv[key], torch[key]
    print(f"| {name} (lower is better) | {k:.0f} | – | {t:.0f} | – | {t/k:.2f} |")
PY
rm -rf "$tmp"
