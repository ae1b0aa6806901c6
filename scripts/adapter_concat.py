#!/usr/bin/env python3
"""Writes an untrained adapter whose header rows are the header rows of the given adapter
files one after another, and whose trailer rows are those of another adapter file; the result
is context-only (its header conditions each document, packets keep only document and trailer
rows). All inputs must be for the same model.

    python3 scripts/adapter_concat.py OUT --header A.safetensors [--header B.safetensors ...]
        [--trailer C.safetensors]

Safetensors by hand (8-byte header length, JSON header, then the f32 bytes) so that it needs
nothing beyond Python's standard library."""
import argparse, json, struct


def read(path):
    """(metadata, header bytes, trailer bytes) of a kvpacket adapter file (f32 tensors)."""
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n])
    data = b[8 + n:]
    meta = json.loads(head['__metadata__']['kvpacket'])
    def part(name):
        if name not in head:
            return b''
        assert head[name]['dtype'] == 'F32', f'{path}: {name} is not f32'
        lo, hi = head[name]['data_offsets']
        return data[lo:hi]
    return meta, part('header'), part('trailer')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--header', action='append', required=True)
    ap.add_argument('--trailer')
    a = ap.parse_args()
    parts = [read(p) for p in a.header]
    meta0 = parts[0][0]
    header = b''.join(h for _, h, _ in parts)
    trailer = b''
    if a.trailer:
        tmeta, _, trailer = read(a.trailer)
        parts.append((tmeta, b'', b''))
    for m, _, _ in parts:
        assert m['model_fingerprint'] == meta0['model_fingerprint'], 'adapters of different models'
    d = meta0['hidden_size']
    nh, nt = len(header) // (4 * d), len(trailer) // (4 * d)
    meta = {
        'model_fingerprint': meta0['model_fingerprint'], 'n_header': nh, 'n_trailer': nt,
        'hidden_size': d, 'context_header': True,
        'made_by': {'kind': 'init', 'header_from': ' + '.join(a.header),
                    'trailer_from': a.trailer or 'none'},
    }
    head = {
        '__metadata__': {'kvpacket': json.dumps(meta, sort_keys=True, separators=(',', ':'))},
        'header': {'dtype': 'F32', 'shape': [nh, d], 'data_offsets': [0, len(header)]},
    }
    if nt:
        head['trailer'] = {'dtype': 'F32', 'shape': [nt, d],
                           'data_offsets': [len(header), len(header) + len(trailer)]}
    h = json.dumps(head, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    open(a.out, 'wb').write(struct.pack('<Q', len(h)) + h + header + trailer)
    print(a.out, f'{nh}+{nt}')


if __name__ == '__main__':
    main()
