"""Rows of a `kvpacket eval` results.jsonl, for the table scripts beside this one.

`rows(path)` yields every record of `path`, then those of `archive.jsonl` in the same folder
when there is one. An evaluation folder keeps the rows of superseded, unshipped adapters in
that archive (`eval` never writes it; rows move there by hand), so `results.jsonl`, which `eval` appends to
and resumes from, stays small; every table script still sees both.
"""
import json
import os


def rows(path):
    """Every record of `path` and of its sibling archive.jsonl, in that order."""
    archive = os.path.join(os.path.dirname(path), "archive.jsonl")
    for p in [path] + ([archive] if os.path.exists(archive) and not os.path.samefile(archive, path) else []):
        with open(p) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
