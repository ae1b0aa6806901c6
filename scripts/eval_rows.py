"""Rows of a `kvpacket eval` results.jsonl, for the table scripts beside this one.

`rows(path)` yields every record of `path`, then those of the archive in the same folder when
there is one: `archive.jsonl.gz` (gzip) and `archive.jsonl`. An evaluation folder keeps the rows
of superseded, unshipped adapters in that archive (`eval` never writes it; rows move there by
hand, and gzip keeps it far below the repository's 2 MiB file limit), so `results.jsonl`, which
`eval` appends to and resumes from, stays small; every table script still sees both.
"""
import gzip
import json
import os

ARCHIVES = ("archive.jsonl.gz", "archive.jsonl")


def _lines(p):
    opener = gzip.open if p.endswith(".gz") else open
    with opener(p, "rt") as f:
        yield from f


def rows(path):
    """Every record of `path`, then of its sibling archives (see ARCHIVES), in that order."""
    folder = os.path.dirname(path)
    archives = [os.path.join(folder, a) for a in ARCHIVES]
    for p in [path] + [a for a in archives if os.path.exists(a) and not os.path.samefile(a, path)]:
        for line in _lines(p):
            if line.strip():
                yield json.loads(line)
