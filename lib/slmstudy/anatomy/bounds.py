"""Each class's lower bound for one decode step: the bytes it must move over the
measured bandwidth, or its FLOPs over the measured matmul peak, whichever is
longer (pure).

* GEMM roles: each layer's weight matrix read once (at the precision's bytes per
  weight, scales included), the batch's input and output rows read and written,
  2 FLOPs per multiply-accumulate. The lm_head reads vocabulary x hidden in the
  activation dtype (no precision of the catalog quantises it).
* attention: every sequence's KV cache up to its context, 4 FLOPs per query
  feature per context token and layer (q.k and the weighted V).
* element-wise: the norms' (2 per layer and a final one), the gated activation's
  and the rotary embedding's reads and writes of the batch's rows.
* sampling: the fp32 logits read three times (temperature, softmax, draw).
* memory copies, activation quantisation, other: no bound of their own (zero):
  a perfect implementation would fuse them away.
* communication between tensor-parallel ranks: no bound (zero): the interconnect's
  bandwidth is not probed. Under tensor parallelism every bound here is still the
  whole model's on one device; the profiled trace is rank 0's share.

The classes' bounds add up to a little more than the roofline's step bound
(``roofline.step_bounds``), which counts the weights and the KV cache only.
"""

from __future__ import annotations

from typing import Any

from .. import analytic, catalog
from ..roofline import Limits
from .classify import CLASSES, LM_HEAD


def gemm_shapes(arch: analytic.Architecture) -> dict[str, tuple[int, int, int]]:
    """(input features, output features, times per step) of each GEMM role."""
    h, q, kv, i = arch.hidden, arch.q_dim, arch.kv_dim, arch.intermediate
    return {"qkv": (h, q + 2 * kv, arch.layers), "o": (q, h, arch.layers),
            "gate_up": (h, 2 * i, arch.layers), "down": (i, h, arch.layers), LM_HEAD: (h, arch.vocab, 1)}


def projection_bytes_per_weight(cfg: dict[str, Any], precision: str) -> float:
    """Bytes per projection weight as vLLM holds them, scales and zero points included."""
    spec = catalog.precision(precision)
    arch = analytic.Architecture.from_config(cfg)
    act = analytic._DTYPE_BYTES[spec.dtype]
    if spec.gguf_file_type:
        facts = analytic.model_facts(cfg, spec)
        small = arch.layers * arch.small_params_per_layer + arch.hidden
        rest = (arch.embedding_params + arch.lm_head_params + small) * act
        return (facts.weight_bytes - rest) / (arch.layers * arch.linear_params_per_layer)
    if spec.quantization_config or spec.quantization:
        return analytic._quantised_projection_bytes(arch, spec) / (arch.layers * arch.linear_params_per_layer)
    return float(act)


def class_bounds(cfg: dict[str, Any], precision: str, batch: int, context: float, limits: Limits) -> dict[str, float]:
    """Seconds per decode step: one entry per class of ``classify.CLASSES`` and
    one per GEMM role (``gemm:qkv``, ..., ``gemm:lm_head``; ``gemm`` is their sum)."""
    spec = catalog.precision(precision)
    arch = analytic.Architecture.from_config(cfg)
    facts = analytic.model_facts(cfg, spec)
    act = analytic._DTYPE_BYTES[spec.dtype]
    wb = projection_bytes_per_weight(cfg, precision)
    bw, peak = limits.bandwidth_bytes_s, limits.peak_flops

    def bound(bytes_: float, flops: float = 0.0) -> float:
        return max(bytes_ / bw, flops / peak if flops else 0.0)

    out: dict[str, float] = {c: 0.0 for c in CLASSES}
    for role, (k, n, times) in gemm_shapes(arch).items():
        per_weight = act if role == LM_HEAD else wb
        t = bound(times * (k * n * per_weight + batch * (k + n) * act), times * 2.0 * batch * k * n)
        out[f"gemm:{role}"] = t
        out["gemm"] += t
    out["attention"] = bound(batch * (context + 1) * facts.kv_bytes_per_token,
                             batch * facts.attn_flops_per_token_per_ctx * context)
    h, q, kv, i = arch.hidden, arch.q_dim, arch.kv_dim, arch.intermediate
    # per layer: two norms (read x and the residual, write both), SiLU(gate) * up
    # (read 2i, write i), rotary on q and k (read and write)
    per_layer = 2 * 4 * h + 3 * i + 2 * (q + kv)
    out["elementwise"] = bound(batch * act * (arch.layers * per_layer + 2 * h))
    out["sampling"] = bound(3 * batch * arch.vocab * 4)
    return out

