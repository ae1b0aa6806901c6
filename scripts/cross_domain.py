#!/usr/bin/env python3
"""Cross-domain table of adapters: every `kvpacket:NAME` method (no recompute on top) in a
`kvpacket eval` results.jsonl (and its archive.jsonl, see eval_rows.py), on every dataset that has `full` and `none` rows.

Usage: scripts/cross_domain.py RESULTS.jsonl
Each cell is measured on the samples that have `full`, `none` and that adapter (its n is in
the cell): the share of `none`'s first-token KL gap to `full` the adapter closes,
1 − KL(adapter) / KL(none), its mean fidelity F1 minus `none`'s (answers agreeing with
`full`'s), and its mean gold F1 minus `none`'s (answers agreeing with the data's answers:
an adapter can be level with `none` in fidelity and still lose gold answers). Point estimates
only; scripts/paired_table.py gives the bootstrap intervals. The first row, where measured, is
`full-reversed` (full attention over the documents in reverse order): the floor an adapter is
read against, how far `full`'s own answers move when only the document order changes.
"""
import collections
import sys

from eval_rows import rows as eval_rows

if len(sys.argv) != 2:
    sys.exit(__doc__.strip().splitlines()[3])
rows = collections.defaultdict(lambda: collections.defaultdict(dict))
for r in eval_rows(sys.argv[1]):
    rows[r["dataset"]][r["sample"]][r["method"]] = r
datasets = sorted(d for d, s in rows.items() if any("full" in m and "none" in m for m in s.values()))
floor = ["full-reversed"] if any("full-reversed" in ms for d in datasets for ms in rows[d].values()) else []
adapters = floor + sorted({m for d in datasets for ms in rows[d].values() for m in ms if m.startswith("kvpacket:") and "+" not in m})


def cell(dataset, adapter):
    same = [ms for ms in rows[dataset].values() if all(k in ms for k in ("full", "none", adapter))]
    if not same:
        return "–"
    mean = lambda m, k: sum(ms[m][k] for ms in same) / len(same)
    kl_none = mean("none", "first_token_kl")
    closed = 1 - mean(adapter, "first_token_kl") / kl_none if kl_none else float("nan")
    fid = mean(adapter, "fidelity_f1") - mean("none", "fidelity_f1")
    gold = mean(adapter, "f1") - mean("none", "f1")
    return f"{closed:+.0%} / {fid:+.3f} / {gold:+.3f} (n = {len(same)})"


print("KL gap closed / Δ fidelity F1 / Δ gold F1 against `none` (n = paired samples)\n")
print("| adapter | " + " | ".join(datasets) + " |")
print("|---|" + "---|" * len(datasets))
for a in adapters:
    print(f"| {a} | " + " | ".join(cell(d, a) for d in datasets) + " |")
