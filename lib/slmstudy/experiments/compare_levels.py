"""04_serving's rows of a comparison: each load level of two runs side by side, with the
spread each level measured itself.

A level is one measurement of many requests, not repetitions of one, so its spread comes
from its requests: a latency percentile carries the bootstrap 95% CI its level recorded
(``serving_tables.with_percentile_cis``: requests resampled), a latency mean the standard
error over the requests its statistics count. The difference of two levels is then judged
as for the other notebooks' rows: *same* when the 95% CI of B - A (normal, from the two
sides' standard errors) includes zero. Requests of one level share the server, so they are
not independent: these CIs are lower bounds on the run-to-run spread, which only repeated
levels (the fidelity layer's rounds) measure. A level's throughput and energy are one value
per run (tokens over the window); they keep "one value per side: no spread".

Each row also carries each side's client CPU (``client_cpu_a``/``_b``: the load generator's
CPU seconds over the level's duration, a share of one core). A client near a whole core
handles the chunks of many streams back to back, so their arrival times are its own pace:
DeepSeek's H100 server at 64 users gave a median gap between chunks of 46 us with the client
at 0.80 of a core (f98d106) and 4.7 ms at 0.81 (6690548), Llama's the other way round (37 us
at 0.85, 5.0 ms at 0.87), while the mean gaps differed by 8-23%. The comparison's note names
such levels (``client_note``).
Pure functions over the levels and requests tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..results.serving_tables import counted_requests

Z95 = 1.959963984540054
KEYS = ["model", "precision", "mode", "level"]
# What each side's spread is, per kind of metric (the rows' ``spread`` column).
SPREAD_BOOTSTRAP = "bootstrap over the level's requests"
SPREAD_REQUESTS = "standard error over the level's requests"
SPREAD_NONE = "one value per level"
# A client busy this share of one core or more is near its own limit (see above).
CLIENT_BUSY = 0.75
CLIENT_NOTE = "levels where a side's client used most of a core (its own pace shapes the chunks' arrival times): "


class Side(NamedTuple):
    """One metric of one level: its value, standard error (NaN: none), the requests
    behind it, what the spread is, and the 95% CI as shown ("" without one)."""

    value: float
    se: float
    n: int
    spread: str
    ci95: str


def level_side(level: Mapping[str, Any], requests: pd.DataFrame, metric: str) -> Side:
    """One metric of one level (``requests``: the level's counted requests).

    A percentile with ``<name>_lo_s``/``_hi_s`` columns: its bootstrap CI, and as standard
    error the CI's half-width over 1.96; a mean of per-request ``<name>_s``: SD / sqrt(n)
    over the requests; anything else: no standard error (NaN), n = 1."""
    value = float(level.get(metric, float("nan")))
    stem = metric[:-2]
    if metric.endswith("_s") and f"{stem}_lo_s" in level:
        lo, hi = float(level[f"{stem}_lo_s"]), float(level[f"{stem}_hi_s"])
        n = int(level.get("completed") or 0)
        if math.isfinite(lo) and math.isfinite(hi) and n >= 2:
            return Side(value, (hi - lo) / (2 * Z95), n, SPREAD_BOOTSTRAP, f"[{lo:.4g}, {hi:.4g}]")
    if metric.endswith("_mean_s"):
        col = metric.replace("_mean_s", "_s")
        x = requests[col].to_numpy(float) if col in requests else np.array([])
        x = x[np.isfinite(x)]
        if len(x) >= 2:
            se = float(x.std(ddof=1) / math.sqrt(len(x)))
            return Side(value, se, len(x), SPREAD_REQUESTS, f"[{value - Z95 * se:.4g}, {value + Z95 * se:.4g}]")
    return Side(value, float("nan"), 1, SPREAD_NONE, "")


def level_diff(a: Side, b: Side) -> tuple[float, float, float]:
    """(B - A, 95% CI low, high) from each side's value and standard error (normal);
    NaN bounds where a side has no standard error."""
    d = b.value - a.value
    if not (math.isfinite(a.se) and math.isfinite(b.se)):
        return d, float("nan"), float("nan")
    half = Z95 * math.sqrt(a.se ** 2 + b.se ** 2)
    return d, d - half, d + half


def level_rows(la: pd.DataFrame, lb: pd.DataFrame, ra: pd.DataFrame, rb: pd.DataFrame,
               metrics: Mapping[str, str], comparable: bool, why: str, verdict: Any) -> list[dict[str, Any]]:
    """One row per level both runs measured and metric: each side's value and CI, the
    ratio B / A and ``verdict(d, lo, hi, sense, n)``."""
    if la.empty or lb.empty:
        return []
    keys = [k for k in KEYS if k in la and k in lb]
    # each side's counted requests, grouped by level once
    by_level = [_by_level(counted_requests(r), keys) for r in (ra, rb)]
    empty = pd.DataFrame()
    out = []
    for _, ga in la.iterrows():
        match = np.logical_and.reduce([lb[k] == ga[k] for k in keys])
        if not match.any():
            continue
        gb = lb[match].iloc[0]
        key = tuple(ga[k] for k in keys)
        req_a, req_b = by_level[0].get(key, empty), by_level[1].get(key, empty)
        for metric, sense in metrics.items():
            if metric not in ga or metric not in gb:
                continue
            sa, sb = level_side(ga, req_a, metric), level_side(gb, req_b, metric)
            if not (math.isfinite(sa.value) and math.isfinite(sb.value)):
                continue
            d, lo, hi = level_diff(sa, sb)
            n = (sa.n, sb.n) if math.isfinite(lo) else (1, 1)
            out.append({**{k: ga[k] for k in keys}, "metric": metric,
                        "client_cpu_a": client_share(ga), "client_cpu_b": client_share(gb),
                        "a_mean": sa.value, "a_ci95": sa.ci95, "a_n": sa.n,
                        "b_mean": sb.value, "b_ci95": sb.ci95, "b_n": sb.n,
                        "ratio_b_over_a": sb.value / sa.value if sa.value else float("nan"),
                        "diff_ci95": f"[{lo:.4g}, {hi:.4g}]" if math.isfinite(lo) else "",
                        "spread": sa.spread if sa.spread == sb.spread else f"A: {sa.spread}; B: {sb.spread}",
                        "verdict": verdict(d, lo, hi, sense, n) if comparable else f"not comparable: {why}"})
    return out


def _by_level(requests: pd.DataFrame, keys: list[str]) -> dict[tuple, pd.DataFrame]:
    """The requests of each level, by the levels' key values (those the table has)."""
    if requests.empty or not all(k in requests for k in keys):
        return {}
    return {k if isinstance(k, tuple) else (k,): g for k, g in requests.groupby(keys, sort=False)}


def client_share(level: Mapping[str, Any]) -> float:
    """The client's CPU seconds over the level's duration (NaN where either is missing)."""
    cpu, dur = level.get("client_cpu_s"), level.get("duration_s")
    try:
        return float(cpu) / float(dur) if float(dur) > 0 else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def client_note(rows: pd.DataFrame) -> str:
    """``CLIENT_NOTE`` and the levels (model, mode, level) where either side's client used
    ``CLIENT_BUSY`` of a core or more, with both shares; "" when none did."""
    if rows.empty or "client_cpu_a" not in rows:
        return ""
    busy = rows[(rows["client_cpu_a"] >= CLIENT_BUSY) | (rows["client_cpu_b"] >= CLIENT_BUSY)]
    levels = busy.drop_duplicates(["model", "mode", "level"])
    if levels.empty:
        return ""
    parts = [f"{r['model']} {r['mode']} {r['level']:g} ({r['client_cpu_a']:.2f} vs {r['client_cpu_b']:.2f})"
             for _, r in levels.iterrows()]
    return CLIENT_NOTE + "; ".join(parts)
