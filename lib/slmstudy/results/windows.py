"""Joining the telemetry trace to the work by wall-clock time.

A window's energy is the energy counter's rise between its start and end (the
integral of power where there is no counter; see ``energy``), its utilisation the
mean of the samples inside it. The same functions serve a repetition, a serving load level
and ``vllm bench latency``'s measured window, so all three are comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..engine import journal as journal_mod
from .energy import check, energy_between, power_integral_j

# Telemetry columns averaged over each window (when the backend has them).
MEAN_COLUMNS = [
    "power_w", "util_gpu_pct", "sm_clock_mhz", "temp_c",
    "gpm_sm_active_pct", "gpm_sm_occupancy_pct", "gpm_tensor_active_pct",
    "gpm_hmma_tensor_pct", "gpm_imma_tensor_pct", "gpm_dram_bw_pct",
    "gpm_fp32_pct", "gpm_fp16_pct", "cpu_pct", "cpu_steal_pct", "proc_cpu_pct",
]
MAX_COLUMNS = ["mem_used_mib", "proc_mem_mib", "proc_rss_mib"]


def load_telemetry(path: Path) -> pd.DataFrame:
    records = journal_mod.read(path)
    df = pd.DataFrame.from_records(records)
    if not df.empty:
        df = df.sort_values("t").reset_index(drop=True)
    return df


def window_stats(tel: pd.DataFrame, t0: float, t1: float) -> dict[str, float]:
    out: dict[str, float] = {}
    if tel.empty:
        return out
    w = tel[(tel["t"] >= t0) & (tel["t"] <= t1)]
    out["telemetry_samples"] = len(w)
    for col in MEAN_COLUMNS:
        if col in w and w[col].notna().any():
            out[f"{col}_mean"] = float(w[col].mean())
    for col in MAX_COLUMNS:
        if col in w and w[col].notna().any():
            out[f"{col}_max"] = float(w[col].max())
    return out


def window_telemetry(tel: pd.DataFrame, t0: float, t1: float, output_tokens: int,
                     idle_power_w: float = float("nan")) -> dict[str, Any]:
    """Energy over [t0, t1] (J, J per output token; NaN without an energy counter or
    power), the same above the job's idle power, the power reading's integral as a
    cross-check of the counter, and the telemetry means and maxima."""
    e = energy_between(tel, t0, t1)
    integral = power_integral_j(tel, t0, t1)
    diff_pct, flagged = check(e, integral)
    above = e - idle_power_w * (t1 - t0)
    per = (lambda j: j / output_tokens) if output_tokens else (lambda j: float("nan"))
    return {"energy_j": e, "j_per_output_token": per(e),
            "energy_above_idle_j": above, "j_per_output_token_above_idle": per(above),
            "energy_power_integral_j": integral, "energy_check_pct": diff_pct, "energy_check_flagged": flagged,
            **window_stats(tel, t0, t1)}


def label_by_phases(tel: pd.DataFrame, records: list[dict[str, Any]], fields: tuple[str, ...]) -> pd.DataFrame:
    """The trace with the ``phase`` each sample fell in and that phase's ``fields``
    (e.g. point and repetition, or load mode and level); "idle" outside phases."""
    if tel.empty:
        return tel
    tel = tel.copy()
    tel["phase"] = "idle"
    for f in fields:
        tel[f] = None
    for p in (x for x in records if x["type"] == "phase"):
        inside = (tel["t"] >= p["t0"]) & (tel["t"] <= p["t1"])
        tel.loc[inside, "phase"] = p["name"]
        for f in fields:
            if f in p:
                tel.loc[inside, f] = p[f]
    return tel
