"""Whether a study's energy numbers can be trusted, from its own traces.

Every notebook that reports joules per token shows this check beside them: how
often the GPU's energy counter moved, how the power reading averages, the idle
power that "above idle" subtracts, and over every measured window (repetition
or load level) how far the power reading's integral strays from the counter. The
tables' energy columns use the counter (``results.energy``); this says how much
a figure built on the power reading instead would be off, and where.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..results import energy
from .base import Study

COLUMNS = ["config", "idle_power_w", "idle_state", "energy_counter_period_s", "power_averaging_s",
           "power_averaging_rms_w", "windows", "flagged", "check_median_abs_pct", "check_max_abs_pct"]


def window_checks(tel: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """For each window (``config``, ``t0``, ``t1``): the counter's energy, the power
    reading's integral, their difference in % and whether it is flagged."""
    rows = []
    for config, w in windows.groupby("config", sort=False):
        g = tel[tel["config"] == config].sort_values("t")
        for t0, t1 in zip(w["t0"], w["t1"]):
            counter, integral = energy.energy_between(g, t0, t1), energy.power_integral_j(g, t0, t1)
            diff, flagged = energy.check(counter, integral)
            rows.append({"config": config, "t0": t0, "t1": t1, "duration_s": t1 - t0, "counter_j": counter,
                         "integral_j": integral, "check_pct": diff, "flagged": flagged})
    return pd.DataFrame(rows)


def table(study: Study[Any]) -> pd.DataFrame:
    """One row per configuration with an energy counter; empty without one (a CPU)."""
    windows = study.table("runs")
    if windows.empty:
        windows = study.table("levels")
    return table_from(study.table("telemetry"), windows, study.table("configs"))


def table_from(tel: pd.DataFrame, windows: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """``table`` from a run's telemetry, its measured windows (runs or load levels) and configurations."""
    if tel.empty or "energy_mj" not in tel or tel["energy_mj"].notna().sum() == 0:
        return pd.DataFrame(columns=COLUMNS)
    checks = window_checks(tel, windows) if not windows.empty else pd.DataFrame(columns=["config"])
    configs = configs.set_index("config") if not configs.empty else pd.DataFrame()
    rows = []
    for config, g in tel.groupby("config", sort=False):
        facts = energy.trace_facts(g, None, None)
        if "idle_power_w" in configs and config in configs.index:  # measured by the run (newer runs)
            facts["idle_power_w"] = configs.loc[config, "idle_power_w"]
            facts["idle_state"] = configs.loc[config, "idle_state"]
        c = checks[checks["config"] == config] if not checks.empty else checks
        d = c["check_pct"].abs().dropna() if not c.empty else pd.Series(dtype=float)
        rows.append({"config": config, **facts, "windows": len(d), "flagged": int(c["flagged"].sum()) if len(c) else 0,
                     "check_median_abs_pct": float(d.median()) if len(d) else float("nan"),
                     "check_max_abs_pct": float(d.max()) if len(d) else float("nan")})
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict(t: pd.DataFrame) -> str:
    """The check in one sentence."""
    if t.empty:
        return "no GPU energy counter on this machine: the energy columns are empty"
    period = t["energy_counter_period_s"].median()
    window = t["power_averaging_s"].mode()
    rms = t["power_averaging_rms_w"].median()
    n, flagged = int(t["windows"].sum()), int(t["flagged"].sum())
    text = (f"the energy counter moved every {period:.3f} s; the power reading matched a "
            f"{window.iloc[0]:g}-second trailing mean of the counter's power (median rms {rms:.1f} W)")
    if n:
        med = float(np.nanmedian(t["check_median_abs_pct"]))
        text += (f"; over {n} measured windows its integral differed from the counter by a median {med:.1f}% per "
                 f"configuration (at most {t['check_max_abs_pct'].max():.0f}%), {flagged} beyond "
                 f"{100 * energy.CHECK_TOLERANCE:g}%: the energy columns use the counter")
    idle = t["idle_power_w"].dropna()
    if len(idle):
        text += f"; idle power {idle.min():.0f}-{idle.max():.0f} W ({t['idle_state'].dropna().iloc[0]})"
    else:
        text += "; no idle power measured (runs older than the idle baseline): no above-idle energy"
    return text + "."
