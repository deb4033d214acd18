"""Joining the telemetry trace to the work by wall-clock time.

A window's energy is the energy counter's rise between its start and end (the
integral of power where there is no counter), its utilisation the mean of the
samples inside it. The same functions serve a repetition, a serving load level
and ``vllm bench latency``'s measured window, so all three are comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..engine import journal as journal_mod

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


def energy_between(tel: pd.DataFrame, t0: float, t1: float) -> float:
    """Joules used by the GPU in [t0, t1]: the total-energy counter's rise,
    interpolated at both ends; without the counter, the integral of power."""
    if tel.empty:
        return float("nan")
    if "energy_mj" in tel and tel["energy_mj"].notna().sum() >= 2:
        s = tel.dropna(subset=["energy_mj"])
        if s["t"].iloc[0] > t0 or s["t"].iloc[-1] < t1:
            return float("nan")  # the trace does not cover the interval
        e = np.interp([t0, t1], s["t"], s["energy_mj"])
        return float(e[1] - e[0]) / 1000.0
    if "power_w" in tel and tel["power_w"].notna().sum() >= 2:
        s = tel.dropna(subset=["power_w"])
        if s["t"].iloc[0] > t0 or s["t"].iloc[-1] < t1:
            return float("nan")
        grid = np.linspace(t0, t1, 64)
        return float(np.trapezoid(np.interp(grid, s["t"], s["power_w"]), grid))
    return float("nan")


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


def window_telemetry(tel: pd.DataFrame, t0: float, t1: float, output_tokens: int) -> dict[str, float]:
    """Energy (J, J per output token; NaN without an energy counter or power) and
    the telemetry means and maxima over [t0, t1]."""
    energy = energy_between(tel, t0, t1)
    return {"energy_j": energy,
            "j_per_output_token": energy / output_tokens if output_tokens else float("nan"),
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
