#!/usr/bin/env python3
"""PyTorch f32 peer for `kvpacket bench prefill`: same GGUF dequantized by HF transformers,
2 threads, sdpa attention. Prints JSON in kvpacket's format. The forward+backward with
gradient checkpointing (torch.utils.checkpoint around each decoder layer, non-reentrant; HF's
own switch left the input embeddings without a gradient in transformers 5.24) runs in a child process so that its peak
memory is its own, as kvpacket's does.
Usage: peers/venv/bin/python peers/bench_torch.py GGUF_PATH [LENGTHS]
       peers/venv/bin/python peers/bench_torch.py GGUF_PATH --checkpointed-fwd-bwd"""
import functools, json, os, resource, subprocess, sys, time
import torch
from torch.utils.checkpoint import checkpoint
from transformers import AutoModelForCausalLM

torch.set_num_threads(2)
gguf = os.path.abspath(sys.argv[1])
checkpointed = len(sys.argv) > 2 and sys.argv[2] == "--checkpointed-fwd-bwd"
lengths = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 and not checkpointed else "512,2048,4096").split(",")]
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                             dtype=torch.float32, attn_implementation="sdpa")
model.eval()
vocab = model.config.vocab_size
g = torch.Generator().manual_seed(0)


def prefill_and_decode():
    out = {"prefill_tok_s": {}}
    with torch.no_grad():
        model(torch.randint(100, vocab, (1, 512), generator=g))  # warm-up, as `kvpacket bench prefill`
        for n in lengths:  # median of 3 timed runs, as `kvpacket bench prefill`
            ids = torch.randint(100, vocab, (1, n), generator=g)
            speeds = []
            for _ in range(3):
                t0 = time.time()
                model(ids, logits_to_keep=1)
                speeds.append(n / (time.time() - t0))
            out["prefill_tok_s"][str(n)] = sorted(speeds)[1]
        ids = torch.randint(100, vocab, (1, 128), generator=g)
        o = model(ids, use_cache=True, logits_to_keep=1)
        pkv = o.past_key_values
        t0 = time.time()
        for i in range(64):
            o = model(ids[:, i:i + 1], past_key_values=pkv, use_cache=True)
            pkv = o.past_key_values
        out["decode_tok_s"] = 64 / (time.time() - t0)
    return out


def fwd_bwd():
    """Median seconds of 3 forward+backward passes of 1000 positions (16 soft tokens that get the
    gradient), loss on the last 64 rows, as `kvpacket bench fwd-bwd`; and this process's peak MB."""
    for p in model.parameters():
        p.requires_grad_(False)
    if checkpointed:
        for layer in model.model.layers:
            layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)
    n, soft, rows = 1000, 16, 64
    times = []
    for rep in range(3):
        ids = torch.randint(100, vocab, (1, n - soft + 1), generator=g)
        emb = model.get_input_embeddings()(ids[:, :n - soft])
        adapter = model.get_input_embeddings()(ids[:, :soft]).clone().requires_grad_(True)
        t0 = time.time()
        x = torch.cat([adapter, emb], 1)
        logits = model(inputs_embeds=x, logits_to_keep=rows, use_cache=False).logits[0]
        target = ids[0, n - soft + 1 - rows:]
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        loss.backward()
        assert adapter.grad is not None
        times.append(time.time() - t0)
    return sorted(times)[1], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if checkpointed:
    s, mb = fwd_bwd()
    print(json.dumps({"fwd_bwd_ckpt_1000_s": s, "fwd_bwd_ckpt_peak_mb": mb}))
else:
    out = prefill_and_decode()
    out["fwd_bwd_1000_s"], out["fwd_bwd_peak_mb"] = fwd_bwd()
    child = subprocess.run([sys.executable, __file__, gguf, "--checkpointed-fwd-bwd"],
                           capture_output=True, text=True, check=True)
    out.update(json.loads(child.stdout.strip().splitlines()[-1]))
    print(json.dumps(out))
