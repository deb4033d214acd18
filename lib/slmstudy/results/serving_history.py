"""The serving study's numbers across GPU sittings: one row per sitting, model and load
level, from each committed 04_serving reference (``levels`` table and the commit that
measured it), and per level how far the sittings lie apart. Pure functions: reading the
committed folders out of git is ``tools/serving_history.py``'s job.

Why a history: on the lent host a server's throughput moves more between sittings than
anything else the study measures (the same command and parameters gave DeepSeek at 64
users 10.2k, 16.4k, 7.9k and 10.5k tok/s over four sittings), while one sitting's
levels carry no spread of their own (one pass each). A reader can only judge a serving
number against the sittings before it, so they are kept side by side, each named by
the commit that measured it.
"""

from __future__ import annotations

import pandas as pd

# What makes two sittings' levels the same measurement: a level measured with other
# lengths, another API or another number of requests (the first sitting sent 32 to some
# levels, later ones 64) is a different workload.
WORKLOAD = ["model", "precision", "weights", "api", "input_tokens", "output_tokens_asked", "mode", "level",
            "requests"]
METRICS = ["output_tok_s", "req_s", "ttft_p50_s", "itl_mean_s", "tpot_mean_s"]
COLUMNS = ["measured_by", "measured_at", "gpu_name", *WORKLOAD, "errors", *METRICS]


def sitting_rows(levels: pd.DataFrame, environment: dict, measured_by: str | None = None) -> pd.DataFrame:
    """One sitting's levels in the history's columns. ``measured_by`` is the commit that
    measured them (the configs' own record where there is one), else the environment's;
    a sitting whose commit was never recorded is kept as "unrecorded"."""
    commit = measured_by or environment.get("git_commit") or "unrecorded"
    out = levels.copy()
    out["measured_by"] = commit[:7] if commit != "unrecorded" else commit
    out["measured_at"] = environment.get("captured_at")
    out["gpu_name"] = environment.get("gpu_name")
    missing = [c for c in COLUMNS if c not in out]
    if missing:
        raise ValueError(f"a levels table without {', '.join(missing)}: not a 04_serving levels table")
    return out[COLUMNS].reset_index(drop=True)


def history(sittings: list[pd.DataFrame]) -> pd.DataFrame:
    """All sittings, oldest first. A sitting committed more than once (a reference
    re-executed over the same measurements) counts once: rows are the same
    measurement when commit, capture time and workload agree."""
    if not sittings:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(sittings, ignore_index=True)
    table = table.drop_duplicates(subset=["measured_by", "measured_at", *WORKLOAD], keep="first")
    return table.sort_values(["measured_at", "model", "mode", "level"], kind="stable").reset_index(drop=True)


def spread(table: pd.DataFrame, metric: str = "output_tok_s") -> pd.DataFrame:
    """Per GPU and level measured in two or more sittings: how many, the lowest and the
    highest value, and their ratio (highest over lowest), with the sittings' values in
    time order."""
    keys = ["gpu_name", *WORKLOAD]
    rows = []
    for key, g in table.dropna(subset=[metric]).groupby(keys, sort=False, dropna=False):
        if len(g) < 2:
            continue
        lo, hi = float(g[metric].min()), float(g[metric].max())
        rows.append({**dict(zip(keys, key)), "sittings": len(g), "lowest": lo, "highest": hi,
                     "highest_over_lowest": hi / lo if lo > 0 else float("nan"),
                     "values": " / ".join(_fmt(v) for v in g[metric]),
                     "commits": " / ".join(g["measured_by"])})
    return pd.DataFrame(rows)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
