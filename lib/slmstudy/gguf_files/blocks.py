"""Random tensor data in ggml's storage formats: GGUF's ``load_format=dummy``.

A quantized ggml tensor is a sequence of blocks; in each, a few fp16 scale fields
and packed small integers. Random bytes are a valid block everywhere except the
fp16 fields, which could decode to NaN/Inf or huge values: those are overwritten
with small positive scales, chosen so that the dequantized weights have a
standard deviation near 0.02 (the configs' ``initializer_range``), as a freshly
initialised model has. Activations then stay finite through every layer, and
llama.cpp computes exactly what it would on trained weights of that format
(speed does not depend on the values).

Block layouts (offsets of the fp16 fields) from ggml's ``ggml-common.h``, as
gguf-py's ``quants.py`` reads them:

=======  =====  ==========================================================
type     bytes  layout
=======  =====  ==========================================================
Q4_0     18     d, qs[16]                        w = d*(q-8),  q in 0..15
Q5_0     22     d, qh[4], qs[16]                 w = d*(q-16), q in 0..31
Q5_1     24     d, m, qh[4], qs[16]              w = d*q + m
Q8_0     34     d, qs[32] (int8)                 w = d*q
Q4_K     144    d, dmin, scales[12], qs[128]     w = d*sc*q - dmin*mn (6-bit sc, mn)
Q5_K     176    d, dmin, scales[12], qh[32], qs[128]
Q6_K     210    ql[128], qh[64], scales[16] (int8), d   w = d*sc*(q-32)
=======  =====  ==========================================================

Everything is vectorised numpy on one seeded generator: a 1.5B model is a few
seconds of random bytes. F16 weights are drawn through a 65536-entry table of
normal quantiles indexed by random 16-bit integers (inverse-CDF sampling at 2^-16
resolution, tails cut at about 4.3 sigma), four times faster than numpy's normal
sampler and indistinguishable for this purpose.
"""

from __future__ import annotations

import functools
import statistics

import numpy as np
from gguf import GGMLQuantizationType

from .types import block_size, type_size

T = GGMLQuantizationType

WEIGHT_STD = 0.02  # HF initializer_range of every catalog config

# Per type: byte offsets of the fp16 fields and their value as a multiple of
# WEIGHT_STD (a block's ``d`` is drawn uniformly in [0.5, 1.5] x that value).
# The multiples are 1/std of the integer part: Q4_0 (q-8) has std 4.6, Q5_0
# (q-16) 9.2, Q8_0 int8 74, Q4_K sc*q about 36*8.5, Q6_K int8 sc * (q-32) 74*18.5.
# dmin (K-quants) and m (Q5_1) recentre the unsigned codes so means are near 0.
_SCALE_FIELDS: dict[GGMLQuantizationType, dict[int, float]] = {
    T.Q4_0: {0: 1 / 4.6},
    T.Q5_0: {0: 1 / 9.2},
    T.Q5_1: {0: 1 / 9.2, 2: -15.5 / 9.2},
    T.Q8_0: {0: 1 / 74},
    T.Q4_K: {0: 1 / 300, 2: 7.5 / 300},
    T.Q5_K: {0: 1 / 600, 2: 15.5 / 600},
    T.Q6_K: {208: 1 / (74 * 18.5)},
}

_CHUNK = 1 << 24  # elements per generation step: bounds the temporary memory


def supported(t: GGMLQuantizationType) -> bool:
    return t in _SCALE_FIELDS or t in (T.F16, T.F32)


def random_weight(t: GGMLQuantizationType, ne: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random data for a tensor of ggml shape ``ne`` stored as ``t``.

    Quantized types come back as uint8 of numpy shape (rows, bytes per row), the
    form ``GGUFWriter`` takes raw quantized data in; F16/F32 as float arrays of
    numpy shape ``reversed(ne)``.
    """
    n = int(np.prod(ne))
    shape = tuple(reversed(ne))
    if t is T.F32:
        return (rng.standard_normal(n, dtype=np.float32) * np.float32(WEIGHT_STD)).reshape(shape)
    if t is T.F16:
        out = np.empty(n, dtype=np.float16)
        table = _normal_table_f16()
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            idx = np.frombuffer(rng.bytes(2 * (stop - start)), dtype=np.uint16)
            out[start:stop] = table[idx]
        return out.reshape(shape)
    if t not in _SCALE_FIELDS:
        raise ValueError(f"no random block generator for ggml type {t.name}")
    bs, ts = block_size(t), type_size(t)
    if ne[0] % bs:
        raise ValueError(f"row of {ne[0]} is not a whole number of {t.name} blocks of {bs}")
    n_blocks = n // bs
    blocks = np.frombuffer(bytearray(rng.bytes(n_blocks * ts)), dtype=np.uint8).reshape(n_blocks, ts)
    d = rng.uniform(0.5, 1.5, size=n_blocks).astype(np.float32) * np.float32(WEIGHT_STD)
    for offset, multiple in _SCALE_FIELDS[t].items():
        blocks[:, offset:offset + 2] = (d * np.float32(multiple)).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(n // ne[0], ne[0] // bs * ts)


@functools.cache
def _normal_table_f16() -> np.ndarray:
    """The 65536 quantiles (i + 0.5) / 65536 of N(0, WEIGHT_STD), as fp16."""
    dist = statistics.NormalDist(0.0, WEIGHT_STD)
    table = np.array([dist.inv_cdf((i + 0.5) / 65536) for i in range(65536)], dtype=np.float16)
    table.setflags(write=False)
    return table
