"""The GPU's energy, read so that it can be trusted.

NVML gives two readings, and the sampler records both at 20 Hz: the total-energy
counter (``energy_mj``, millijoules since the driver loaded) and the board power
(``power_w``). They are not equally good for a window of a second:

* the counter moves in steps (every 100 ms on the lent H100): a sample taken
  between two updates repeats the last value. Interpolating between *all*
  samples turns each step into a staircase and errs by up to one step's energy
  at each end of a window; interpolating between the samples where the counter
  *moved* does not (each such sample lags its update by the same fraction of the
  sampling interval, so the lag cancels in a difference);
* the power reading is an average over a past window (on the lent H100 it
  matches a 1-second trailing mean of the counter's derivative), so its integral
  over a window shorter than that averages in power from before the window.

So a window's energy is the counter's rise (``energy_between``); the integral of
the power reading is a cross-check (``check``) that says how far a power-based
figure would be off; ``counter_period_s`` and ``power_averaging_s`` measure the
two readings' properties from the trace itself, and ``idle_power_w`` the power
the GPU draws doing nothing, for "above idle" energy per token.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHECK_TOLERANCE = 0.05  # counter and power integral further apart than this: flagged
# Trailing-mean windows tried when matching the power reading to the counter's derivative.
AVERAGING_CANDIDATES_S = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)


def counter_updates(tel: pd.DataFrame) -> pd.DataFrame:
    """The samples at which the energy counter had moved since the sample before
    (and the first sample): ``t`` and ``energy_mj``, in time order."""
    if tel.empty or "energy_mj" not in tel:
        return pd.DataFrame(columns=["t", "energy_mj"])
    s = tel.dropna(subset=["energy_mj"]).sort_values("t")[["t", "energy_mj"]]
    moved = s["energy_mj"].diff().ne(0)  # the first row's NaN difference counts as moved
    return s[moved].reset_index(drop=True)


def _covers(t: pd.Series, t0: float, t1: float) -> bool:
    return len(t) >= 2 and t.iloc[0] <= t0 and t.iloc[-1] >= t1


def energy_between(tel: pd.DataFrame, t0: float, t1: float) -> float:
    """Joules used by the GPU in [t0, t1]: the energy counter's rise, interpolated
    between the samples where it moved; without the counter, the integral of the
    power reading. NaN when the updates (or samples) do not bracket the window."""
    if tel.empty:
        return float("nan")
    if "energy_mj" in tel and tel["energy_mj"].notna().sum() >= 2:
        u = counter_updates(tel)
        # past the last update the energy used so far is unknown (the counter has
        # not shown it yet): a window must lie between two updates at each end
        if not _covers(u["t"], t0, t1):
            return float("nan")
        e = np.interp([t0, t1], u["t"], u["energy_mj"])
        return float(e[1] - e[0]) / 1000.0
    return power_integral_j(tel, t0, t1)


def power_integral_j(tel: pd.DataFrame, t0: float, t1: float) -> float:
    """The integral of the power reading over [t0, t1] (trapezoids on a fine grid)."""
    if tel.empty or "power_w" not in tel or tel["power_w"].notna().sum() < 2:
        return float("nan")
    s = tel.dropna(subset=["power_w"]).sort_values("t")
    if not _covers(s["t"], t0, t1):
        return float("nan")
    grid = np.linspace(t0, t1, 256)
    return float(np.trapezoid(np.interp(grid, s["t"], s["power_w"]), grid))


def check(counter_j: float, integral_j: float, tolerance: float = CHECK_TOLERANCE) -> tuple[float, bool]:
    """(difference of the power integral from the counter, in %; flagged) for one window."""
    if not (counter_j > 0) or np.isnan(integral_j):
        return float("nan"), False
    diff = (integral_j - counter_j) / counter_j
    return 100.0 * diff, bool(abs(diff) > tolerance)


def counter_period_s(tel: pd.DataFrame) -> float:
    """How often the energy counter moves: the median time between its updates."""
    u = counter_updates(tel)
    return float(np.median(np.diff(u["t"]))) if len(u) >= 3 else float("nan")


def counter_power(tel: pd.DataFrame) -> pd.DataFrame:
    """The power the counter implies between consecutive updates: ``t`` (midpoint), ``power_w``."""
    u = counter_updates(tel)
    if len(u) < 2:
        return pd.DataFrame(columns=["t", "power_w"])
    dt = np.diff(u["t"].to_numpy())
    de = np.diff(u["energy_mj"].to_numpy()) / 1000.0
    return pd.DataFrame({"t": (u["t"].to_numpy()[1:] + u["t"].to_numpy()[:-1]) / 2, "power_w": de / dt})


def power_averaging_s(tel: pd.DataFrame, candidates: tuple[float, ...] = AVERAGING_CANDIDATES_S,
                      step_s: float = 0.05) -> tuple[float, float]:
    """(window, rms W): the trailing-mean window over the counter's power that best
    reproduces the power reading, and how well it does. 0 would mean the reading
    is instantaneous. NaN without both readings or with under 10 s of trace."""
    cp = counter_power(tel)
    if cp.empty or "power_w" not in tel or tel["power_w"].notna().sum() < 2:
        return float("nan"), float("nan")
    s = tel.dropna(subset=["power_w"]).sort_values("t")
    start, end = cp["t"].iloc[0] + max(candidates), min(cp["t"].iloc[-1], s["t"].iloc[-1])
    if end - start < 10.0:
        return float("nan"), float("nan")
    grid = np.arange(start, end, step_s)
    truth = np.interp(np.arange(cp["t"].iloc[0], end, step_s), cp["t"], cp["power_w"])
    offset = len(truth) - len(grid)  # samples of history before the first graded point
    reading = np.interp(grid, s["t"], s["power_w"])
    best = (float("nan"), float("inf"))
    for w in candidates:
        k = max(1, int(round(w / step_s)))
        trailing = np.convolve(truth, np.ones(k) / k, mode="full")[: len(truth)][offset:]
        rms = float(np.sqrt(np.mean((trailing - reading) ** 2)))
        if rms < best[1]:
            best = (w, rms)
    return best


def idle_power_w(tel: pd.DataFrame, t0: float, t1: float) -> float:
    """Mean power over [t0, t1] by the counter (the reading is a lagging average)."""
    e = energy_between(tel, t0, t1)
    return e / (t1 - t0) if t1 > t0 and not np.isnan(e) else float("nan")


def trace_facts(tel: pd.DataFrame, idle: tuple[float, float] | None, idle_state: str | None) -> dict[str, object]:
    """A job's energy facts: its idle power (over the idle window it measured, if
    any), how often the counter moved and how the power reading averages."""
    window, rms = power_averaging_s(tel)
    return {
        "idle_power_w": idle_power_w(tel, *idle) if idle else float("nan"),
        "idle_state": idle_state if idle else None,
        "energy_counter_period_s": counter_period_s(tel),
        "power_averaging_s": window,
        "power_averaging_rms_w": rms,
    }


def idle_window(records: list[dict[str, object]]) -> tuple[tuple[float, float] | None, str | None]:
    """The ``idle_baseline`` phase of a job's journal: ((t0, t1), state) or (None, None)."""
    for r in records:
        if r.get("type") == "phase" and r.get("name") == "idle_baseline":
            return (float(r["t0"]), float(r["t1"])), r.get("state")  # type: ignore[arg-type,return-value]
    return None, None
