"""Distance to the hardware limit: the fastest any implementation could go.

Decoding one step for a batch of B sequences must at least read every weight
once (the lm_head included; the input embedding only for the B rows it looks
up) and the KV cache of every sequence; it must also do the step's arithmetic.
The step can take no less than the larger of (bytes / bandwidth) and
(FLOPs / peak). Prefill of B prompts of L tokens is bound the same way, usually
by arithmetic. A request's lower bound is its prefill bound plus one decode
bound per output token, at the average context length. Achieved fraction =
bound / measured time: 1.0 would be a perfect implementation.

Bandwidth and peak come from the hardware probe (measured) or the datasheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from . import analytic, catalog
from .hardware import PRECISION_COMPUTE


@dataclass(frozen=True)
class Limits:
    bandwidth_bytes_s: float
    peak_flops: float  # for the precision's matrix products


def limits_for(hw: dict[str, Any], precision: str, source: str = "measured") -> Limits:
    """``hw`` is the probe's JSON; ``source`` "measured" or "datasheet"."""
    dtype = PRECISION_COMPUTE[precision]
    if source == "datasheet":
        sheet = hw.get("datasheet") or {}
        return Limits(sheet.get("bandwidth_tbs", float("nan")) * 1e12, sheet.get(dtype, float("nan")) * 1e12)
    # fp32 is bounded by full-precision fp32 (torch's default keeps TF32 off for
    # matmuls); the probe records TF32 separately for reference.
    peak = hw.get("tflops", {}).get(dtype, float("nan"))
    return Limits(hw.get("bandwidth_tbs", float("nan")) * 1e12, peak * 1e12)


def _weights_read_per_step(cfg: dict[str, Any], facts: analytic.ModelFacts, precision: str, batch: int) -> float:
    arch = analytic.Architecture.from_config(cfg)
    act = analytic._DTYPE_BYTES[catalog.precision(precision).dtype]
    table = arch.embedding_params * act
    if arch.tied_embeddings:
        return facts.weight_bytes  # the embedding table is the lm_head: read in full
    # untied: the input embedding table is only touched for the batch's rows
    return facts.weight_bytes - table + batch * arch.hidden * act


def step_bounds(model: str, precision: str, batch: int, context: float, limits: Limits,
                kv_cache_dtype: str = "auto") -> dict[str, float]:
    """Lower bound of one decode step (seconds), split into its memory and compute parts."""
    cfg = catalog.model(model).hf_config()
    facts = analytic.model_facts(cfg, catalog.precision(precision), kv_cache_dtype)
    bytes_ = _weights_read_per_step(cfg, facts, precision, batch) + batch * (context + 1) * facts.kv_bytes_per_token
    flops = batch * (facts.flops_per_token + facts.attn_flops_per_token_per_ctx * context)
    t_mem = bytes_ / limits.bandwidth_bytes_s
    t_cmp = flops / limits.peak_flops
    return {"bytes": bytes_, "flops": flops, "t_mem_s": t_mem, "t_compute_s": t_cmp, "t_step_s": max(t_mem, t_cmp)}


def prefill_bound(model: str, precision: str, batch: int, input_len: int, limits: Limits) -> dict[str, float]:
    cfg = catalog.model(model).hf_config()
    facts = analytic.model_facts(cfg, catalog.precision(precision))
    # causal attention over the prompt: on average half the prompt per token
    flops = batch * input_len * (facts.flops_per_token + facts.attn_flops_per_token_per_ctx * input_len / 2)
    bytes_ = _weights_read_per_step(cfg, facts, precision, batch * input_len) + batch * input_len * facts.kv_bytes_per_token
    t_cmp, t_mem = flops / limits.peak_flops, bytes_ / limits.bandwidth_bytes_s
    return {"prefill_flops": flops, "t_prefill_compute_s": t_cmp, "t_prefill_mem_s": t_mem, "t_prefill_s": max(t_cmp, t_mem)}


def request_bound(model: str, precision: str, batch: int, input_len: int, output_len: int,
                  limits: Limits) -> dict[str, float]:
    """Lower bound for a batch: prefill, then output_len - 1 decode steps at mean context."""
    pre = prefill_bound(model, precision, batch, input_len, limits)
    step = step_bounds(model, precision, batch, input_len + output_len / 2, limits)
    total = pre["t_prefill_s"] + (output_len - 1) * step["t_step_s"]
    return {**pre, **step, "t_total_s": total, "bound_tok_s": batch * output_len / total,
            "decode_bound": "memory" if step["t_mem_s"] >= step["t_compute_s"] else "compute"}


def attach(runs: pd.DataFrame, hw: dict[str, Any], source: str = "measured") -> pd.DataFrame:
    """Add the bound and the achieved fraction to each row of a runs table
    (columns model, precision, batch, input_len, output_len, output_tok_s, tpot_mean_s)."""
    rows = []
    for _, r in runs.iterrows():
        lim = limits_for(hw, r["precision"], source)
        b = request_bound(r["model"], r["precision"], int(r["batch"]), int(r["input_len"]), int(r["output_len"]), lim)
        rows.append({
            "bound_tok_s": b["bound_tok_s"],
            "achieved_fraction": r["output_tok_s"] / b["bound_tok_s"],
            "step_bound_ms": 1000 * b["t_step_s"],
            "step_fraction": b["t_step_s"] / r["tpot_mean_s"] if r.get("tpot_mean_s") else float("nan"),
            "decode_bound": b["decode_bound"],
            "bytes_per_step": b["bytes"],
            # Above 1 the "bound" is not one: the probe's kernels were slower than
            # the engine's (seen on CPUs, where torch's bf16 matmul is emulated).
            "bound_exceeded": r["output_tok_s"] > 1.05 * b["bound_tok_s"],
        })
    return pd.concat([runs.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
