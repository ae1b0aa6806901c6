#!/usr/bin/env python3
"""PyTorch f32 peer of `cargo bench --bench kernels`: the same x·Wᵀ products and the same causal
attention (`scaled_dot_product_attention`, K/V repeated to every query head as HF's models do
before calling it; the repeat is outside the timing), 2 threads, best of 4 runs of >= 0.25 s,
GFLOP/s (attention: useful FLOPs only, 4 · head_dim per visible (query, key, head)).
Usage: peers/venv/bin/python peers/kernels_torch.py"""
import time
import torch
import torch.nn.functional as F

torch.set_num_threads(2)
SHAPES = [("SmolLM2", "qkv", 512, 576, 960), ("SmolLM2", "gate|up", 512, 576, 3072),
          ("SmolLM2", "down", 512, 1536, 576), ("Qwen2.5", "qkv", 512, 896, 1152),
          ("Qwen2.5", "gate|up", 512, 896, 9728), ("Qwen2.5", "down", 512, 4864, 896)]
ATTENTION = [("SmolLM2", 9, 3, 64), ("Qwen2.5", 14, 2, 64)]


def best_gflops(flops, f):
    f()
    best = 0.0
    for _ in range(4):
        t, calls = time.time(), 0
        while time.time() - t < 0.25:
            f()
            calls += 1
        best = max(best, flops * calls / (time.time() - t) / 1e9)
    return best


print("| model | product | tokens × in × out | PyTorch GFLOP/s |\n|---|---|---|---|")
for model, what, m, k, n in SHAPES:
    x, w = torch.randn(m, k), torch.randn(n, k)
    g = best_gflops(2 * m * k * n, lambda: x @ w.t())
    print(f"| {model} | {what} | {m} × {k} × {n} | {g:.1f} |")
print("\n| model | causal attention | tokens | PyTorch GFLOP/s |\n|---|---|---|---|")
with torch.no_grad():
    for model, heads, kv_heads, d in ATTENTION:
        for n in [512, 2048, 4096]:
            q = torch.randn(1, heads, n, d)
            k = torch.randn(1, kv_heads, n, d).repeat_interleave(heads // kv_heads, dim=1)
            v = torch.randn(1, kv_heads, n, d).repeat_interleave(heads // kv_heads, dim=1)
            g = best_gflops(4 * d * heads * n * (n + 1) / 2,
                            lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
            print(f"| {model} | {heads} heads / {kv_heads} kv, d {d} | {n} | {g:.1f} |")
