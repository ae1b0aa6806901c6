#!/usr/bin/env bash
# Speed of kvpacket against its peers on one GGUF, in one sitting (run on a quiet machine):
# llama.cpp's llama-bench (-t 2), PyTorch f32 (2 threads; forward+backward with and without
# gradient checkpointing) and `kvpacket bench prefill` (with its bf16-products prefill rows where
# the CPU has AVX512-BF16).
# Every peer's run takes the median of 3 timed runs per measure. The peers run in ROUNDS rounds
# (default 3), one after the other within each round, so that a slow spell of a shared VM falls
# on all of them; each cell of the table is the median over the rounds, and a second table gives
# the lowest and highest per-round ratio of kvpacket to the faster peer. Where the CPU has
# AVX512-BF16, kvpacket's rows with bf16 products (prefill, and the training pass of
# `train --bf16-products`) stand against the same f32 peers.
# Usage: peers/bench_all.sh [MODEL] [ROUNDS]   (MODEL: smollm2 | qwen2.5-0.5b; needs peers/build
# and peers/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-smollm2}
rounds=${2:-3}
kv=./target/release/kvpacket
cargo build --release --quiet
gguf=$($kv models fetch "$model")
tmp=$(mktemp -d)
for r in $(seq 1 "$rounds"); do
  echo "round $r of $rounds: llama.cpp, PyTorch, kvpacket ($(date -u +%H:%M:%S) UTC)" >&2
  peers/build/llama.cpp/build/bin/llama-bench -m "$gguf" -t 2 -p 512,2048,4096 -n 64 -r 3 -o json > "$tmp/llama.$r.json" 2>/dev/null
  peers/venv/bin/python peers/bench_torch.py "$gguf" 2>/dev/null | tail -1 > "$tmp/torch.$r.json"
  $kv bench prefill --model "$model" --json > "$tmp/kv.$r.json"
done
python3 - "$tmp" "$model" "$rounds" <<'PY'
import json, statistics, sys
d, model, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
med3 = lambda r: sorted(r["samples_ts"])[len(r["samples_ts"]) // 2]  # median of -r 3, as the others
LENGTHS = ["512", "2048", "4096"]


def measures(r):
    """(name, kvpacket, llama.cpp or None, PyTorch, higher is better) of round r."""
    ll = json.load(open(f"{d}/llama.{r}.json"))
    lp = {str(x["n_prompt"]): med3(x) for x in ll if x["n_prompt"] > 0}
    ld = next(med3(x) for x in ll if x["n_gen"] > 0)
    t, k = json.load(open(f"{d}/torch.{r}.json")), json.load(open(f"{d}/kv.{r}.json"))
    out = [(f"prefill {n} tok/s", k["prefill_tok_s"][n], lp[n], t["prefill_tok_s"][n], True) for n in LENGTHS]
    bf16 = k.get("prefill_bf16_tok_s", {})  # CPUs with AVX512-BF16 only
    out += [(f"prefill {n} tok/s, bf16 products", bf16[n], lp[n], t["prefill_tok_s"][n], True)
            for n in LENGTHS if n in bf16]
    out.append(("decode tok/s", k["decode_tok_s"], ld, t["decode_tok_s"], True))
    out.append(("fwd+bwd 1000 tokens s", k["fwd_bwd_1000_s"], None, t["fwd_bwd_1000_s"], False))
    out.append(("fwd+bwd checkpointed s", k["fwd_bwd_ckpt_1000_s"], None, t["fwd_bwd_ckpt_1000_s"], False))
    out.append(("fwd+bwd peak RSS MB", k["fwd_bwd_peak_mb"], None, t["fwd_bwd_peak_mb"], False))
    out.append(("fwd+bwd checkpointed peak RSS MB", k["fwd_bwd_ckpt_peak_mb"], None, t["fwd_bwd_ckpt_peak_mb"], False))
    if "fwd_bwd_bf16_1000_s" in k:  # CPUs with AVX512-BF16 only; against PyTorch's f32 pass
        out.append(("fwd+bwd 1000 tokens s, bf16 products", k["fwd_bwd_bf16_1000_s"], None, t["fwd_bwd_1000_s"], False))
        out.append(("fwd+bwd peak RSS MB, bf16 products", k["fwd_bwd_bf16_peak_mb"], None, t["fwd_bwd_peak_mb"], False))
    return out


def ratio(k, l, t, higher):
    """kvpacket against the faster peer, as a speed ratio (> 1: kvpacket is ahead)."""
    best = max(x for x in (l, t) if x is not None) if higher else min(x for x in (l, t) if x is not None)
    return k / best if higher else best / k


per_round = [measures(r) for r in range(1, rounds + 1)]
fmt = lambda v: "–" if v is None else (f"{v:.2f}" if v < 20 else f"{v:.0f}")
print(f"model: {model}, 2 threads, {rounds} round(s); each cell the median over the rounds\n")
print("| measure | kvpacket | llama.cpp | PyTorch f32 | kvpacket / llama.cpp | kvpacket / PyTorch |")
print("|---|---|---|---|---|---|")
for i, (name, _, _, _, higher) in enumerate(per_round[0]):
    col = lambda j: None if per_round[0][i][j] is None else statistics.median(m[i][j] for m in per_round)
    k, l, t = col(1), col(2), col(3)
    sense = "" if higher else " (lower is better)"
    rl = "–" if l is None else f"{(k / l if higher else l / k):.2f}"
    rt = f"{(k / t if higher else t / k):.2f}" + (" (speed)" if not higher and "MB" not in name else "")
    print(f"| {name}{sense} | {fmt(k)} | {fmt(l)} | {fmt(t)} | {rl} | {rt} |")
print("\nkvpacket against the faster peer in each round (> 1: kvpacket ahead; memory: the peer's / kvpacket's)\n")
print("| measure | " + " | ".join(f"round {r}" for r in range(1, rounds + 1)) + " | lowest | highest |")
print("|---|" + "---|" * (rounds + 2))
for i, (name, *_rest) in enumerate(per_round[0]):
    rs = [ratio(*m[i][1:]) for m in per_round]
    print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in rs) + f" | {min(rs):.2f} | {max(rs):.2f} |")
PY
rm -rf "$tmp"
