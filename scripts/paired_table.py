#!/usr/bin/env python3
"""Paired comparison of methods in a `kvpacket eval` results.jsonl.

Usage: scripts/paired_table.py RESULTS.jsonl DATASET METHOD[,METHOD...]
Prints a markdown table over the samples that have every listed method (so each row is
measured on the same samples): gold F1 micro (pooled overlaps), mean fidelity F1 against
`full`'s answer, mean first-token KL against `full`, mean TTFT.
"""
import collections
import json
import sys

path, dataset, methods = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
by_sample = collections.defaultdict(dict)
for line in open(path):
    if line.strip():
        r = json.loads(line)
        if r["dataset"] == dataset:
            by_sample[r["sample"]][r["method"]] = r
samples = sorted(s for s, ms in by_sample.items() if all(m in ms for m in methods))
print(f"{dataset}, n = {len(samples)} (paired)\n")
print("| method | gold F1 micro | fidelity F1 | first-token KL | TTFT ms |")
print("|---|---|---|---|---|")
for m in methods:
    rs = [by_sample[s][m] for s in samples]
    if not rs:
        continue
    common, pred, gold = (sum(r["overlap"][i] for r in rs) for i in range(3))
    micro = 2 * common / (pred + gold) if pred + gold else 0.0
    mean = lambda k: sum(r[k] for r in rs) / len(rs)
    print(f"| {m} | {micro:.3f} | {mean('fidelity_f1'):.3f} | {mean('first_token_kl'):.2f} | {mean('ttft_ms'):.0f} |")
