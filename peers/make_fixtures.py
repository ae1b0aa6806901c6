#!/usr/bin/env python3
"""Reference fixtures for kvpacket's runtime tests, from two peers on the same GGUF files.

- llama.cpp (llama-server built by peers/build_llamacpp.sh): chat-template rendering,
  token ids (exact-tokenization check) and its greedy continuation (looser check).
- HF transformers + PyTorch, the GGUF dequantized to f32: the exact-math peer. Greedy
  continuation from llama.cpp's prompt ids, with the top-1/top-2 logit margin at each step so
  that any divergence can be attributed to a near-tie.

Usage: peers/venv/bin/python peers/make_fixtures.py MODEL_NAME GGUF_PATH OUT_JSON
(run `kvpacket models fetch NAME` first; the venv needs torch, transformers, gguf, accelerate).
"""
import json, os, subprocess, sys, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "build/llama.cpp/build/bin/llama-server")
N_NEW = 32
PORT = 18734

CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in two sentences why the sky is blue.",
    "List three prime numbers greater than 100.",
    "Who wrote the novel 'Pride and Prejudice'?",
    "Translate 'good morning' into Spanish and German.",
]
RAW_TEXTS = [
    "In 1984, 3.14159 and 2048 were numbers; so was 1,000,000.",
    "  leading spaces, trailing tabs\t\t\nnew lines\n\n and  double  spaces",
    "def f(x):\n    return x**2  # squares",
    "Ünïcödé: naïve café, 日本語のテキスト, emoji 🎉!",
    "don't I'LL we've they'RE",
]


def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def llama_cpp(gguf):
    proc = subprocess.Popen([SERVER, "-m", gguf, "--port", str(PORT), "-t", "2", "-c", "4096", "--jinja",
                             "--no-warmup", "-np", "1"], stdout=subprocess.DEVNULL, stderr=open(os.path.join(HERE, "build", "llama-server.log"), "w"))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2)
                break
            except Exception:
                time.sleep(0.5)
        chats = []
        for p in CHAT_PROMPTS:
            text = post("/apply-template", {"messages": [{"role": "user", "content": p}]})["prompt"]
            ids = post("/tokenize", {"content": text, "add_special": True, "parse_special": True})["tokens"]
            out = post("/completion", {"prompt": ids, "n_predict": N_NEW, "temperature": 0, "top_k": 1,
                                       "ignore_eos": True, "cache_prompt": False, "return_tokens": True})
            chats.append({"user": p, "templated": text, "prompt_ids": ids, "llamacpp_greedy": out["tokens"]})
        raws = [{"text": t, "ids": post("/tokenize", {"content": t, "add_special": False,
                                                        "parse_special": True})["tokens"]} for t in RAW_TEXTS]
        return chats, raws
    finally:
        proc.terminate()
        proc.wait()


def hf_greedy(gguf, chats):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                                 dtype=torch.float32)
    model.eval()
    for c in chats:
        ids = list(c["prompt_ids"])
        toks, margins = [], []
        with torch.no_grad():
            out = model(torch.tensor([ids]), use_cache=True)
            for step in range(N_NEW):
                logits = out.logits[0, -1]
                top = torch.topk(logits, 2)
                t = int(top.indices[0])
                toks.append(t)
                margins.append(float(top.values[0] - top.values[1]))
                out = model(torch.tensor([[t]]), past_key_values=out.past_key_values, use_cache=True)
        c["hf_f32_greedy"] = toks
        c["hf_f32_margins"] = margins


def main():
    name, gguf, out = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
    chats, raws = llama_cpp(gguf)
    hf_greedy(gguf, chats)
    json.dump({"model": name, "n_new": N_NEW, "chats": chats, "raw_tokenization": raws}, open(out, "w"), indent=1)
    for c in chats:
        same = next((i for i, (a, b) in enumerate(zip(c["llamacpp_greedy"], c["hf_f32_greedy"])) if a != b), N_NEW)
        print(f"{name}: {c['user'][:40]!r}: llama.cpp and HF f32 agree on the first {same}/{N_NEW} tokens")


if __name__ == "__main__":
    main()
