"""Means with 95% confidence intervals over repetitions (Student's t), and the relative
difference of two tools' medians with its CI and verdict."""

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


def relative_difference_ci(ours: Sequence[Sequence[float]], theirs: Sequence[Sequence[float]],
                           level: float = 0.95, min_rounds: int = 3, resamples: int = 4000,
                           seed: int = 0) -> dict[str, float | int | str]:
    """``100 * (median(ours) / median(theirs) - 1)`` over all rounds' values, with a CI.

    ``ours[r]`` and ``theirs[r]`` are round ``r``'s values (a round: one fresh
    process of each side). The host's speed changes from process to process, so
    rounds, not runs, are the independent samples: with ``min_rounds`` or more
    complete rounds the CI is Student's t over the rounds' own differences
    (``method`` "rounds"). With fewer, it is a percentile bootstrap of the pooled
    difference that resamples runs within each round and side ("bootstrap"): it
    only knows the spread inside the processes it saw, so it is too narrow when
    processes differ, and says so by its method.
    """
    pairs = [(np.asarray(a, float), np.asarray(b, float)) for a, b in zip(ours, theirs)]
    pairs = [(a[np.isfinite(a)], b[np.isfinite(b)]) for a, b in pairs]
    pairs = [(a, b) for a, b in pairs if len(a) and len(b)]
    nan = float("nan")
    if not pairs:
        return {"difference_pct": nan, "ci_lo": nan, "ci_hi": nan, "rounds": 0, "method": "none"}

    def diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(100 * (np.median(a) / np.median(b) - 1))

    pooled = diff(np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs]))
    if len(pairs) >= min_rounds:
        _, lo, hi, _ = mean_ci([diff(a, b) for a, b in pairs], level)
        method = "rounds"
    elif all(len(a) < 2 or len(b) < 2 for a, b in pairs):
        # one value per round and side: nothing to resample, no interval
        lo = hi = nan
        method = "none"
    else:
        rng = np.random.default_rng(seed)
        draws = np.empty(resamples)
        for i in range(resamples):
            a = np.concatenate([rng.choice(x, len(x)) for x, _ in pairs])
            b = np.concatenate([rng.choice(y, len(y)) for _, y in pairs])
            draws[i] = diff(a, b)
        tail = 100 * (1 - level) / 2
        lo, hi = (float(v) for v in np.percentile(draws, [tail, 100 - tail]))
        method = "bootstrap"
    return {"difference_pct": pooled, "ci_lo": lo, "ci_hi": hi, "rounds": len(pairs), "method": method}


def agreement_verdict(difference_pct: float, ci_lo: float, ci_hi: float, tolerance_pct: float,
                      max_half_width_pct: float) -> str:
    """``agrees`` when the difference is within the tolerance, or its CI holds zero
    and is narrower than ``±max_half_width_pct``; ``differs`` when the CI excludes
    zero and the difference is beyond the tolerance; else ``inconclusive``."""
    if not np.isfinite(difference_pct):
        return "not measured"
    if abs(difference_pct) <= tolerance_pct:
        return "agrees"
    has_ci = np.isfinite(ci_lo) and np.isfinite(ci_hi)
    if has_ci and ci_lo <= 0 <= ci_hi and (ci_hi - ci_lo) / 2 < max_half_width_pct:
        return "agrees"
    if has_ci and not (ci_lo <= 0 <= ci_hi):
        return "differs"
    return "inconclusive"


def bootstrap_percentile_ci(groups: Sequence[Sequence[float]], q: float, level: float = 0.95,
                            resamples: int = 1000, seed: int = 0, max_work: float = 2e7) -> tuple[float, float]:
    """A percentile-bootstrap CI of the ``q``-th percentile of the pooled values of
    ``groups`` (one group per request: a request's TTFT, or all its inter-token gaps),
    resampling whole groups, since the values of one request are not independent.
    Fewer resamples (not fewer than 100) when pooling would exceed ``max_work`` values;
    NaN with fewer than two groups."""
    return bootstrap_percentile_cis(groups, (q,), level, resamples, seed, max_work)[q]


def bootstrap_percentile_cis(groups: Sequence[Sequence[float]], qs: Sequence[float], level: float = 0.95,
                             resamples: int = 1000, seed: int = 0, max_work: float = 2e7
                             ) -> dict[float, tuple[float, float]]:
    """``bootstrap_percentile_ci`` for several percentiles from the same resamples
    (each resample pooled once, every percentile read from it)."""
    arrays = [np.asarray(g, float) for g in groups]
    arrays = [a[np.isfinite(a)] for a in arrays]
    arrays = [a for a in arrays if len(a)]
    n = len(arrays)
    if n < 2:
        return {q: (float("nan"), float("nan")) for q in qs}
    rng = np.random.default_rng(seed)
    sizes = np.array([len(a) for a in arrays])
    if (sizes == 1).all():  # one value per group: a matrix of resamples at once
        x = np.concatenate(arrays)
        stats_ = np.percentile(x[rng.integers(0, n, (resamples, n))], qs, axis=1).T
    else:
        reps = int(min(resamples, max(100, max_work // max(int(sizes.sum()), 1))))
        stats_ = np.array([np.percentile(np.concatenate([arrays[i] for i in rng.integers(0, n, n)]), qs)
                           for _ in range(reps)])
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(stats_, tail, axis=0), np.percentile(stats_, 100 - tail, axis=0)
    return {q: (float(a), float(b)) for q, a, b in zip(qs, lo, hi)}
