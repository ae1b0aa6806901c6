#!/usr/bin/env python3
"""Where the wrong answers of each method come from, on biography sets.

    kvpacket data synth:biography:10 --limit 100 > /tmp/bio10.json
    python3 scripts/binding_errors.py RESULTS.jsonl /tmp/bio10.json synth:biography:10 full,none,kvpacket:ctxwide

For every sample a method answered wrong (gold F1 <= 0.5), the answer is looked up in the
sample's documents (each titled with its person's name): found in the asked person's own document
(the right person, an answer of the wrong shape or another attribute), in another person's
document (a binding error; counted by its distance in document order from the asked one, -1 =
the document just before), or in none of them. A value that several documents share is counted
at the nearest one.
"""
import collections
import json
import sys


def main():
    results, data, dataset, methods = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    samples = json.load(open(data))
    rows = collections.defaultdict(dict)
    for line in open(results):
        r = json.loads(line)
        if r["dataset"] == dataset:
            rows[r["method"]][r["sample"]] = r
    print(f"{dataset}: wrong answers (gold F1 <= 0.5) by the document that holds them")
    print()
    print("| method | n | wrong | asked person's document | other person's: -1 | +1 | farther | in no document |")
    print("|---|---|---|---|---|---|---|---|")
    for m in methods:
        c = collections.Counter()
        n = 0
        for i, s in enumerate(samples):
            r = rows[m].get(i)
            if r is None:
                continue
            n += 1
            if r["f1"] > 0.5:
                continue
            c["wrong"] += 1
            asked = next((j for j, d in enumerate(s["ctxs"]) if d["title"] in s["question"]), None)
            if asked is None:
                sys.exit(f"sample {i}: no document's title is in its question (biography sets only)")
            answer = r["answer"].strip().rstrip(".").lower()
            holders = [j for j, d in enumerate(s["ctxs"]) if answer and answer in d["text"].lower()]
            if not holders:
                c["none"] += 1
            elif asked in holders:
                c["asked"] += 1
            else:
                off = min((j - asked for j in holders), key=abs)
                c[off if abs(off) == 1 else "farther"] += 1
        print(f"| {m} | {n} | {c['wrong']} | {c['asked']} | {c[-1]} | {c[1]} | {c['farther']} | {c['none']} |")


if __name__ == "__main__":
    main()
