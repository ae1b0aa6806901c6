#!/usr/bin/env python3
"""Paired comparison of methods in a `kvpacket eval` results.jsonl (and its archive.jsonl, see
eval_rows.py).

Usage: scripts/paired_table.py RESULTS.jsonl DATASET METHOD[,METHOD...] [--vs METHOD]
Prints a markdown table over the samples that have every listed method (so each row is
measured on the same samples): gold F1 micro (pooled overlaps), mean fidelity F1 against
`full`'s answer, mean first-token KL against `full`, mean TTFT; and mean ROUGE-L where the
records have it (summaries).
With --vs M, also each method's mean paired difference to M in gold F1 (per sample),
fidelity F1 and first-token KL with a 95% bootstrap interval over samples (10,000 resamples,
seed 0). When `full` and `none` are both listed, the table also says how much of the
none → full gap each method closes: in gold F1 micro, (m − none) / (full − none), with m's
ratio to full; in first-token KL (full's is 0), 1 − KL(m) / KL(none).
"""
import collections
import random
import sys

from eval_rows import rows

args = sys.argv[1:]
vs = None
if "--vs" in args:
    i = args.index("--vs")
    if i + 1 == len(args):
        sys.exit("--vs needs a method name")
    vs = args[i + 1]
    del args[i : i + 2]
if len(args) != 3:
    sys.exit(__doc__.strip().splitlines()[3])
path, dataset, methods = args[0], args[1], args[2].split(",")
if vs and vs not in methods:
    methods.append(vs)
by_sample = collections.defaultdict(dict)
for r in rows(path):
    if r["dataset"] == dataset:
        by_sample[r["sample"]][r["method"]] = r
samples = sorted(s for s, ms in by_sample.items() if all(m in ms for m in methods))
rouge = bool(samples) and all("rouge_l" in r for s in samples for r in by_sample[s].values())
print(f"{dataset}, n = {len(samples)} (paired)\n")
def micro_f1(m):
    rs = [by_sample[s][m] for s in samples]
    common, pred, gold = (sum(r["overlap"][i] for r in rs) for i in range(3))
    return 2 * common / (pred + gold) if pred + gold else 0.0

def mean_of(m, k):
    return sum(by_sample[s][m][k] for s in samples) / len(samples)

gap = samples and "full" in methods and "none" in methods
print("| method | gold F1 micro |" + (" ROUGE-L |" if rouge else "") + " fidelity F1 | first-token KL | TTFT ms |"
      + (" F1 / full | F1 gap closed | KL gap closed |" if gap else ""))
print("|---|---|" + ("---|" if rouge else "") + "---|---|---|" + ("---|---|---|" if gap else ""))
for m in methods:
    if not samples:
        continue
    micro = micro_f1(m)
    rouge_cell = f" {mean_of(m, 'rouge_l'):.3f} |" if rouge else ""
    extra = ""
    if gap:
        full, none = micro_f1("full"), micro_f1("none")
        kl_none = mean_of("none", "first_token_kl")
        closed = (micro - none) / (full - none) if full != none else float("nan")
        kl_closed = 1 - mean_of(m, "first_token_kl") / kl_none if kl_none else float("nan")
        ratio = micro / full if full else float("nan")
        pct = lambda x: "–" if x != x else f"{x:+.0%}"  # no gap to close (full = none): a dash
        extra = f" {ratio:.2f} | {pct(closed)} | {pct(kl_closed)} |"
    print(f"| {m} | {micro:.3f} |{rouge_cell} {mean_of(m, 'fidelity_f1'):.3f} | {mean_of(m, 'first_token_kl'):.2f} | {mean_of(m, 'ttft_ms'):.0f} |{extra}")

def interval(diffs, n_boot=10_000):
    rng = random.Random(0)
    means = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(n_boot))
    return means[int(0.025 * n_boot)], means[int(0.975 * n_boot) - 1]


if vs and samples:
    print(f"\nPaired differences against `{vs}` (mean [95% bootstrap interval]):\n")
    print(f"| method | Δ gold F1 | Δ fidelity F1 | Δ first-token KL |")
    print("|---|---|---|---|")
    for m in methods:
        if m in (vs, "full"):
            continue
        cells = []
        for k in ("f1", "fidelity_f1", "first_token_kl"):
            d = [by_sample[s][m][k] - by_sample[s][vs][k] for s in samples]
            lo, hi = interval(d)
            cells.append(f"{sum(d) / len(d):+.3f} [{lo:+.3f}, {hi:+.3f}]")
        print(f"| {m} | {cells[0]} | {cells[1]} | {cells[2]} |")
