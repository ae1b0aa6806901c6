#!/usr/bin/env python3
"""PyTorch f32 peer of `cargo bench --bench gemm`: the same x·Wᵀ products, 2 threads, best of
4 runs of >= 0.25 s, GFLOP/s. Usage: peers/venv/bin/python peers/gemm_torch.py"""
import time
import torch

torch.set_num_threads(2)
SHAPES = [("SmolLM2", "qkv", 512, 576, 960), ("SmolLM2", "gate|up", 512, 576, 3072),
          ("SmolLM2", "down", 512, 1536, 576), ("Qwen2.5", "qkv", 512, 896, 1152),
          ("Qwen2.5", "gate|up", 512, 896, 9728), ("Qwen2.5", "down", 512, 4864, 896)]
print("| model | product | tokens × in × out | PyTorch GFLOP/s |\n|---|---|---|---|")
for model, what, m, k, n in SHAPES:
    x, w = torch.randn(m, k), torch.randn(n, k)
    x @ w.t()
    best = 0.0
    for _ in range(4):
        t, calls = time.time(), 0
        while time.time() - t < 0.25:
            x @ w.t()
            calls += 1
        best = max(best, 2 * m * k * n * calls / (time.time() - t) / 1e9)
    print(f"| {model} | {what} | {m} × {k} × {n} | {best:.1f} |")
