"""Means with 95% confidence intervals over repetitions (Student's t)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as st


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n); the interval is NaN with fewer than two finite values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    m = float(x.mean())
    if n < 2:
        return m, float("nan"), float("nan"), n
    half = float(st.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return m, m - half, m + half, n


def summarize(df: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per group: ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` and ``n``."""
    rows = []
    if df.empty:
        return pd.DataFrame(columns=by)
    for keys, g in df.groupby(by, sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(by, keys))
        for m in metrics:
            if m not in g:
                continue
            mean, lo, hi, n = mean_ci(g[m])
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = mean, lo, hi
            row["n"] = max(row.get("n", 0), n)
        rows.append(row)
    return pd.DataFrame(rows)
