"""One sample of an engine that spans several GPUs (tensor parallelism), from one
sample of each: the engine's totals where readings add up, averages where they are
shares, and each GPU's own columns beside them. Pure.

Why totals: energy per token must count every GPU that worked for the tokens; a
tensor-parallel engine's GPUs each hold and read their share of the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SUMMED = ("power_w", "energy_mj", "mem_used_mib", "proc_mem_mib")
# shares of each GPU's capacity, clocks and temperatures: the engine's is their mean
# (the hottest GPU is kept apart as temp_max_c)
AVERAGED_PREFIXES = ("util_", "gpm_", "sm_clock", "mem_clock", "temp_c")
PER_GPU = ("power_w", "util_gpu_pct", "mem_used_mib", "gpm_sm_active_pct", "gpm_dram_bw_pct")


def combine(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The engine's sample from its GPUs' samples taken together (same tick)."""
    if len(rows) == 1:
        return dict(rows[0])
    out: dict[str, Any] = {"t": rows[0]["t"], "gpus": len(rows)}
    keys = dict.fromkeys(k for r in rows for k in r if k != "t")
    for key in keys:
        values = [r.get(key) for r in rows]
        if any(v is None for v in values):
            continue  # a reading one GPU lacks (GPM not primed yet, no energy counter): not the engine's
        if key in SUMMED:
            out[key] = sum(values)
        elif key.startswith(AVERAGED_PREFIXES):
            out[key] = sum(values) / len(values)
        elif key == "clock_event_reasons":
            reasons = 0
            for v in values:
                reasons |= int(v)  # any GPU's throttling reason is the engine's
            out[key] = reasons
        else:
            out[key] = values[0]
    if all(r.get("temp_c") is not None for r in rows):
        out["temp_max_c"] = max(r["temp_c"] for r in rows)
    for i, r in enumerate(rows):
        for key in PER_GPU:
            if r.get(key) is not None:
                out[f"gpu{i}_{key}"] = r[key]
    return out
