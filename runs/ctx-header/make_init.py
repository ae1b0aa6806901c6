#!/usr/bin/env python3
"""Writes runs/ctx-header/pre-wide.safetensors: a context-only header that is the token
embeddings of Qwen2.5's preamble (ctxpre.safetensors, 58 rows, made by run.sh) and `wide`'s
16 trained trailer rows; the start of runs/ctx-wide. Safetensors by hand: 8-byte header
length, JSON header, then the f32 bytes."""
import json, struct, sys

def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n])
    data = b[8 + n:]
    meta = json.loads(head['__metadata__']['kvpacket'])
    part = lambda name: data[head[name]['data_offsets'][0]:head[name]['data_offsets'][1]]
    return meta, part('header'), part('trailer')

pre_meta, pre_header, _ = read('runs/ctx-header/ctxpre.safetensors')
wide_meta, _, wide_trailer = read('adapters/qwen2.5-0.5b/wide.safetensors')
assert pre_meta['model_fingerprint'] == wide_meta['model_fingerprint']
d = pre_meta['hidden_size']
nh, nt = len(pre_header) // (4 * d), len(wide_trailer) // (4 * d)
meta = {
    'model_fingerprint': pre_meta['model_fingerprint'], 'n_header': nh, 'n_trailer': nt,
    'hidden_size': d, 'context_header': True,
    'made_by': {'kind': 'init', 'header_text': pre_meta['made_by']['header_text'],
                'trailer_from': 'adapters/qwen2.5-0.5b/wide.safetensors'},
}
head = {
    '__metadata__': {'kvpacket': json.dumps(meta, sort_keys=True, separators=(',', ':'))},
    'header': {'dtype': 'F32', 'shape': [nh, d], 'data_offsets': [0, len(pre_header)]},
    'trailer': {'dtype': 'F32', 'shape': [nt, d],
                'data_offsets': [len(pre_header), len(pre_header) + len(wide_trailer)]},
}
h = json.dumps(head, separators=(',', ':')).encode()
h += b' ' * (-len(h) % 8)
out = sys.argv[1] if len(sys.argv) > 1 else 'runs/ctx-header/pre-wide.safetensors'
open(out, 'wb').write(struct.pack('<Q', len(h)) + h + pre_header + wide_trailer)
print(out, f'{nh}+{nt}')
