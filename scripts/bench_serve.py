#!/usr/bin/env python3
"""Serving measurements, one sitting (issue 16): TTFT of a 10-document MuSiQue request on a
second server whose packets come from Redis (packed by the first), against `full` on the same
server; then a load test (N concurrent clients for a fixed time) at --workers 1 and 2.

Usage: scripts/bench_serve.py [MODEL] [SECONDS] [CLIENTS]  (defaults: smollm2 30 32)
Needs: target/release/kvpacket, redis-server, ../shared/data/musique_s.json. Prints tables."""
import json, os, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request, urllib.error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KV = os.path.join(ROOT, "target", "release", "kvpacket")
model = sys.argv[1] if len(sys.argv) > 1 else "smollm2"
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30
clients = int(sys.argv[3]) if len(sys.argv) > 3 else 32

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait(port):
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1); return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"server on {port} did not start")

def post(port, body, timeout=600):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    t = time.time()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), time.time() - t
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), time.time() - t

tmp = tempfile.mkdtemp(prefix="kvpacket-bench-serve-")
procs = []
def start(args):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    procs.append(p); return p
try:
    rport = free_port()
    start(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no"])
    time.sleep(0.5)
    store = f"redis://127.0.0.1:{rport}/"
    a, b = free_port(), free_port()
    env = dict(os.environ, KVPACKET_HOME=os.environ.get("KVPACKET_HOME", os.path.expanduser("~/.cache/kvpacket")))
    for port in (a, b):
        procs.append(subprocess.Popen([KV, "serve", "--model", model, "--store", store, "--port", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
    wait(a); wait(b)
    sample = json.load(open(os.path.join(ROOT, "..", "shared", "data", "musique_s.json")))[0]
    docs = [{"title": d["title"], "text": d["text"]} for d in sample["ctxs"]]
    q = {"messages": [{"role": "user", "content": sample["question"]}], "documents": docs, "max_tokens": 16}
    rows = []
    s, r, t = post(a, q); rows.append(("server A, first sight (packs 10 documents)", r["usage"], t))
    s, r, t = post(b, q); rows.append(("server B, packets from Redis (cold memory tier)", r["usage"], t))
    s, r, t = post(b, q); rows.append(("server B again (memory tier warm)", r["usage"], t))
    s, r, t = post(b, dict(q, kv_method="full")); rows.append(("server B, kv_method full", r["usage"], t))
    print(f"## 10-document MuSiQue request ({model}, {sum(len(d['text'].split()) for d in docs)} words)\n")
    print("| request | TTFT ms | packet load ms | reused | recomputed | total s |\n|---|---|---|---|---|---|")
    for name, u, t in rows:
        print(f"| {name} | {u['ttft_ms']:.0f} | {u['packet_load_ms']:.0f} | {u['reused_tokens']} | {u['recomputed_tokens']} | {t:.2f} |")
    for p in procs[1:]:
        p.terminate(); p.wait()
    del procs[1:]
    # Load test: short biography-like requests over a fixed pool of 20 documents.
    pool = [{"title": f"Person {i}", "text": f"Person {i} was born in city {i % 7} and works for company {i % 5}."} for i in range(20)]
    print(f"\n## Load: {clients} clients for {seconds:.0f} s, 3 documents + a question each, max_tokens 8\n")
    print("| workers | served | 429s | other errors | served/s | p50 s | p99 s |\n|---|---|---|---|---|---|---|")
    for workers in (1, 2):
        port = free_port()
        procs.append(subprocess.Popen([KV, "serve", "--model", model, "--store", store, "--port", str(port),
                                       "--workers", str(workers), "--queue", "16"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        wait(port)
        for i in range(0, 20, 3):
            post(port, {"messages": [{"role": "user", "content": "warm"}], "documents": pool[i:i + 3], "max_tokens": 1})
        lat, codes, lock = [], [], threading.Lock()
        until = time.time() + seconds
        def client(c):
            i = 0
            while time.time() < until:
                docs = [pool[(c + i + k) % 20] for k in range(3)]
                s, r, t = post(port, {"messages": [{"role": "user", "content": f"Where was Person {(c + i) % 20} born?"}],
                                      "documents": docs, "max_tokens": 8})
                with lock:
                    codes.append(s)
                    if s == 200: lat.append(t)
                if s == 429: time.sleep(0.05)
                i += 1
        ts = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        [t.start() for t in ts]; [t.join() for t in ts]
        lat.sort()
        n = len(lat)
        print(f"| {workers} | {n} | {codes.count(429)} | {len(codes) - n - codes.count(429)} | {n / seconds:.2f} | "
              f"{lat[n // 2]:.2f} | {lat[min(n - 1, n * 99 // 100)]:.2f} |")
        procs[-1].terminate(); procs[-1].wait(); procs.pop()
finally:
    for p in procs:
        p.terminate()
