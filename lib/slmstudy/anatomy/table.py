"""Per profiled window: ms per step and share per class, the device's idle time,
the sum check, and the gap to the roofline bound split into kernels slower than
their own bound and the device waiting for the host (pure).

Definitions (per decode step, the window's totals divided by its steps):

* class time: the summed durations of the class's events in the window;
* idle: the window's wall time not covered by any device event (GPU: no kernel,
  copy or set running; CPU engine: the engine thread outside torch ops);
* sum check: classes + idle against the *measured* time per output token of the
  sweep at that batch (unprofiled runs): within the tolerance, the anatomy
  accounts for the step users get; beyond it, the profiled window is not the
  measured step (the profiler's own cost, or kernels overlapping);
* above bound: each class's time minus its bound (``bounds.class_bounds``);
* gap: measured step - the roofline's step bound = above bound + idle + the
  bounds' own excess over the roofline + the sum check's residual.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .classify import CLASSES, GEMM, ROLES, gemm_roles, kernel_class
from .trace import busy_us


def classify_events(events: pd.DataFrame, layers: int) -> tuple[pd.DataFrame, str]:
    """One window's events with their class and, for GEMMs, their layer role
    (columns ``cls`` and ``role``); and the role assignment's note ("" when roles
    were assigned)."""
    df = events.sort_values("start_us", kind="stable").reset_index(drop=True).copy()
    df["cls"] = [kernel_class(n, bool(m)) for n, m in zip(df["name"], df["memcpy"])]
    df["role"] = ""
    gemm = df.index[df["cls"] == GEMM]
    if len(gemm):
        roles = gemm_roles(df.loc[gemm, "name"].tolist(), df.loc[gemm, "dur_us"].tolist(),
                           df.loc[gemm, "step"].astype(int).tolist(), layers)
        df.loc[gemm, "role"] = roles.roles
        return df, roles.note
    return df, "no GEMM in the window"


def window_rows(events: pd.DataFrame, steps: int, wall_us: float, bounds_s: dict[str, float],
                measured_step_s: float) -> pd.DataFrame:
    """One row per class (``CLASSES``, then ``idle``) and per GEMM role
    (``gemm:qkv`` ...): ms per step, share of the measured step, bound ms, ms above
    the bound. ``events``: one window's classified events."""
    per_step = 1e-3 / steps  # microseconds in the window -> ms per step
    measured_ms = 1e3 * measured_step_s
    rows = []

    def row(part: str, ms: float, bound_ms: float | None) -> dict[str, Any]:
        return {"part": part, "ms_per_step": ms, "share": ms / measured_ms if measured_ms else float("nan"),
                "bound_ms": bound_ms, "above_bound_ms": ms - bound_ms if bound_ms is not None else None}

    by_cls = events.groupby("cls")["dur_us"].sum() if len(events) else pd.Series(dtype=float)
    for c in CLASSES:
        rows.append(row(c, float(by_cls.get(c, 0.0)) * per_step, 1e3 * bounds_s.get(c, 0.0)))
    idle = (wall_us - busy_us(events)) * per_step
    rows.append(row("idle", idle, 0.0))
    gemm = events[events["cls"] == GEMM] if len(events) else events
    by_role = gemm.groupby("role")["dur_us"].sum() if len(gemm) else pd.Series(dtype=float)
    for r in ROLES:
        if r in by_role:
            rows.append(row(f"gemm:{r}", float(by_role[r]) * per_step, 1e3 * bounds_s.get(f"gemm:{r}", 0.0)))
    if "" in by_role:
        rows.append(row("gemm:unassigned", float(by_role[""]) * per_step, None))
    return pd.DataFrame(rows)


def window_summary(rows: pd.DataFrame, steps: int, wall_us: float, measured_step_s: float,
                   roofline_step_s: float, tolerance_pct: float,
                   unprofiled_step_s: float = float("nan")) -> dict[str, Any]:
    """The window's totals from its ``window_rows``.

    ``idle_ms`` is the profiled window's device idle time. The profiler's own host work
    (recording every host op beside the step marks) lengthens a profiled step on a GPU,
    where the kernels' durations, timed on the device, do not change: on the H100 a
    profiled step took 12% (DeepSeek, batch 1) to 97% (Llama, batch 16) longer than the
    sweep's unprofiled one, all of it idle time. So the host's share of the *measured*
    step is estimated as the measured step less the kernels' time (``host_ms``; none when
    the kernels alone exceed it, as a profiler that slowed them would make them), and the
    profiler's cost (``profiler_cost_pct``) is reported; the sum check compares the
    profiled classes + idle with the measured step, so it shows that cost.

    ``unprofiled_step_s``: the same batch's decode steps around the window, timed by
    the host without the profiler (windows recorded before it was: nan). Against it
    the profiler's cost is its own, apart from the spread between the sweep's runs
    and the anatomy's batch (``window_vs_sweep_pct``, which then says how well the
    profiled batch stands for the sweep)."""
    parts = rows[rows["part"].isin([*CLASSES, "idle"])]
    classes = parts[parts["part"] != "idle"]
    idle_ms = float(parts.loc[parts["part"] == "idle", "ms_per_step"].sum())
    sum_ms = float(parts["ms_per_step"].sum())
    measured_ms = 1e3 * measured_step_s
    diff = 100 * (sum_ms - measured_ms) / measured_ms if measured_ms else float("nan")
    above = float((classes["ms_per_step"] - classes["bound_ms"]).sum())
    bound_ms = 1e3 * roofline_step_s
    classes_ms = float(classes["ms_per_step"].sum())
    profiled_ms = wall_us * 1e-3 / steps
    host_ms = measured_ms - classes_ms if measured_ms and measured_ms >= classes_ms else float("nan")
    unprofiled_ms = 1e3 * unprofiled_step_s
    own = unprofiled_ms > 0  # False for nan: a window recorded before the steps were timed
    baseline_ms = unprofiled_ms if own else measured_ms
    return {
        "steps": steps,
        "profiled_step_ms": profiled_ms,
        "measured_step_ms": measured_ms,
        "classes_ms": classes_ms,
        "idle_ms": idle_ms,
        "idle_share": idle_ms / measured_ms if measured_ms else float("nan"),
        "host_ms": host_ms,
        "host_share": host_ms / measured_ms if measured_ms else float("nan"),
        "unprofiled_step_ms": unprofiled_ms,
        "window_vs_sweep_pct": 100 * (unprofiled_ms - measured_ms) / measured_ms if measured_ms else float("nan"),
        "profiler_cost_basis": "unprofiled steps" if own else "sweep",
        "profiler_cost_pct": 100 * (profiled_ms - baseline_ms) / baseline_ms if baseline_ms else float("nan"),
        "sum_ms": sum_ms,
        "sum_diff_pct": diff,
        "sum_check": ("ok" if abs(diff) <= tolerance_pct else "off") if diff == diff else "no measured step",
        "roofline_bound_ms": bound_ms,
        "class_bounds_ms": float(classes["bound_ms"].sum()),
        "gap_ms": measured_ms - bound_ms,
        "above_bound_ms": above,
        "achieved_fraction": bound_ms / measured_ms if measured_ms else float("nan"),
    }


def top_events(events: pd.DataFrame, steps: int, cls: str | None = None, n: int = 8) -> pd.DataFrame:
    """The ``n`` event names taking most time per step (of one class, or all)."""
    df = events if cls is None else events[events["cls"] == cls]
    if df.empty:
        return pd.DataFrame(columns=["name", "cls", "calls_per_step", "ms_per_step"])
    g = df.groupby(["name", "cls"])["dur_us"].agg(["count", "sum"]).reset_index()
    g["calls_per_step"] = g["count"] / steps
    g["ms_per_step"] = g["sum"] * 1e-3 / steps
    return g.sort_values("ms_per_step", ascending=False).head(n)[["name", "cls", "calls_per_step", "ms_per_step"]]
