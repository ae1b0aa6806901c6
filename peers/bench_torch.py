#!/usr/bin/env python3
"""PyTorch f32 peer for `kvpacket bench prefill`: same GGUF dequantized by HF transformers,
2 threads, sdpa attention. Prints JSON in kvpacket's format.
Usage: peers/venv/bin/python peers/bench_torch.py GGUF_PATH [LENGTHS]"""
import json, os, resource, sys, time
import torch
from transformers import AutoModelForCausalLM

torch.set_num_threads(2)
gguf = os.path.abspath(sys.argv[1])
lengths = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "512,2048,4096").split(",")]
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                             dtype=torch.float32, attn_implementation="sdpa")
model.eval()
vocab = model.config.vocab_size
g = torch.Generator().manual_seed(0)
out = {"prefill_tok_s": {}}
with torch.no_grad():
    model(torch.randint(100, vocab, (1, 512), generator=g))  # warm-up, as `kvpacket bench prefill`
    for n in lengths:
        ids = torch.randint(100, vocab, (1, n), generator=g)
        t0 = time.time()
        model(ids, logits_to_keep=1)
        out["prefill_tok_s"][str(n)] = n / (time.time() - t0)
    ids = torch.randint(100, vocab, (1, 128), generator=g)
    o = model(ids, use_cache=True, logits_to_keep=1)
    pkv = o.past_key_values
    t0 = time.time()
    for i in range(64):
        o = model(ids[:, i:i + 1], past_key_values=pkv, use_cache=True)
        pkv = o.past_key_values
    out["decode_tok_s"] = 64 / (time.time() - t0)
for p in model.parameters():
    p.requires_grad_(False)
n, soft, rows = 1000, 16, 64
times = []
for rep in range(3):  # median of 3, as `kvpacket bench fwd-bwd`
    ids = torch.randint(100, vocab, (1, n - soft + 1), generator=g)
    emb = model.get_input_embeddings()(ids[:, :n - soft])
    adapter = model.get_input_embeddings()(ids[:, :soft]).clone().requires_grad_(True)
    t0 = time.time()
    x = torch.cat([adapter, emb], 1)
    logits = model(inputs_embeds=x, logits_to_keep=rows).logits[0]
    target = ids[0, n - soft + 1 - rows:]
    loss = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
    loss.backward()
    assert adapter.grad is not None
    times.append(time.time() - t0)
out["fwd_bwd_1000_s"] = sorted(times)[1]
out["fwd_bwd_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
