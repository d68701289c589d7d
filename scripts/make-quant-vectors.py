#!/usr/bin/env python3
"""make-quant-vectors.py — known answers for tests/test_quant.c from an independent decoder.

For each GGML type the project supports, draws random VALID blocks (random bytes, with every
fp16 scale/min field replaced by a random finite fp16 of sane magnitude, subnormals included)
and dequantizes them with the PyPI package `gguf` (gguf.quants.dequantize, numpy). Writes one
file per type, tests/data/quant/<type>.bin (little-endian):

    char magic[4] = "QPKA"; u32 ggml_type; u32 n_blocks; u32 n_elems;
    u8  blocks[n_blocks * block_bytes];
    f32 expected[n_elems];

Deterministic (numpy Generator seeded per type). Developer tool: CI uses the checked-in files.
Usage: python3 scripts/make-quant-vectors.py [outdir]   (needs: pip install numpy gguf)
"""
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGML_QUANT_SIZES
from gguf.quants import dequantize

# type -> (number of blocks, byte offsets of the fp16 fields inside one block)
TYPES = {
    T.F32: (256, None),
    T.F16: (256, None),
    T.BF16: (256, None),
    T.Q4_0: (16, [0]),
    T.Q4_1: (16, [0, 2]),
    T.Q5_0: (16, [0]),
    T.Q5_1: (16, [0, 2]),
    T.Q8_0: (16, [0]),
    T.Q2_K: (6, [80, 82]),
    T.Q3_K: (6, [108]),
    T.Q4_K: (6, [0, 2]),
    T.Q5_K: (6, [0, 2]),
    T.Q6_K: (6, [208]),
}


def sane_f16(rng, n):
    """Random finite fp16 values: random sign, magnitude 2^e with e in [-26, 3) (so ~1 in 4
    is an fp16 subnormal), a few exact zeros."""
    e = rng.uniform(-26.0, 3.0, n)
    v = np.sign(rng.uniform(-1, 1, n)) * np.exp2(e)
    v[rng.uniform(0, 1, n) < 0.03] = 0.0
    h = v.astype(np.float16)
    assert np.all(np.isfinite(h))
    return h.view(np.uint16)


def scalar_bits(rng, qtype, n):
    if qtype == T.F32:
        u = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        bad = (u & 0x7FFFFFFF) > 0x7F800000  # NaN payloads are not compared bit for bit
        u[bad] &= 0xFF800000  # -> +-inf
        return u.view(np.uint8)
    u = rng.integers(0, 2**16, n, dtype=np.uint32).astype(np.uint16)
    if qtype == T.F16:
        bad = (u & 0x7FFF) > 0x7C00
        u[bad] &= 0xFC00
    else:  # BF16
        bad = (u & 0x7FFF) > 0x7F80
        u[bad] &= 0xFF80
    # a few exact specials: +-0, +-inf, smallest/largest subnormal and normal
    spec = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF] if qtype == T.F16 else [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x7F7F]
    u[: len(spec)] = spec
    return u.view(np.uint8)


def make(qtype, out):
    nblk, f16_offs = TYPES[qtype]
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(1000 + int(qtype))
    if f16_offs is None:
        raw = scalar_bits(rng, qtype, nblk)
    else:
        blocks = rng.integers(0, 256, (nblk, block_bytes), dtype=np.uint16).astype(np.uint8)
        for off in f16_offs:
            blocks[:, off:off + 2] = sane_f16(rng, nblk).reshape(nblk, 1).view(np.uint8).reshape(nblk, 2)
        raw = blocks.reshape(-1)
    raw = np.ascontiguousarray(raw)
    n_elems = nblk * block_elems
    expected = np.asarray(dequantize(raw.reshape(1, -1), qtype), dtype=np.float32).reshape(-1)
    assert expected.size == n_elems, (qtype.name, expected.size, n_elems)
    assert not np.any(np.isnan(expected)), qtype.name
    path = os.path.join(out, qtype.name.lower() + ".bin")
    with open(path, "wb") as f:
        f.write(b"QPKA" + struct.pack("<III", int(qtype), nblk, n_elems))
        f.write(raw.tobytes())
        f.write(expected.astype("<f4").tobytes())
    return path, os.path.getsize(path)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "data", "quant")
    os.makedirs(out, exist_ok=True)
    total = 0
    for qtype in TYPES:
        path, size = make(qtype, out)
        total += size
        print(f"{path}: {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
