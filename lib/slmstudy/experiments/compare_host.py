"""Whether the host explains a difference between two runs: on each throughput row that
is faster or slower, each side's GPU busy time and engine-process CPU, and a label when
the slower side's GPU waited for its host (2026-12-06: Llama-3.2-1B at half its speed for
seven minutes of a sitting, ``utilization.gpu`` 47% against 94% at 115% engine CPU,
DeepSeek's rows beside it unchanged). Pure functions over the runs tables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# The host diagnosis: the slower side's GPU busy at least this many points less of the
# time (NVML's utilization.gpu; repetitions of one point spread by about 3), while its
# engine process used at least this share of the other side's CPU (it was not idle).
HOST_UTIL_DROP_PTS = 10.0
HOST_CPU_KEPT = 0.9
HOST_COLUMNS = ("util_gpu_pct_mean", "proc_cpu_pct_mean")
HOST_NOTE = "rows the host, not the GPU, explains (the slower side's steps waited for its host): "


def host_diagnosis(ta: pd.DataFrame, tb: pd.DataFrame, rows: pd.DataFrame,
                   keys: Sequence[str] = ("model", "precision", "point")) -> pd.DataFrame:
    """``rows`` with, on each throughput row that is faster or slower, each side's mean
    ``utilization.gpu`` and engine-process CPU and a ``host`` label: "B waited on its host"
    (or A) when the slower side's GPU was busy ``HOST_UTIL_DROP_PTS`` points less of the
    time while its engine process kept ``HOST_CPU_KEPT`` of the other's CPU; "" otherwise
    (the GPU as busy: the difference is on the GPU or in what it ran)."""
    if rows.empty or not all(c in ta and c in tb for c in HOST_COLUMNS):
        return rows
    keys = [k for k in keys if k in rows and k in ta and k in tb]
    ma = ta.groupby(keys)[list(HOST_COLUMNS)].mean()
    mb = tb.groupby(keys)[list(HOST_COLUMNS)].mean()
    out = rows.copy()
    for col in ("util_gpu_a", "util_gpu_b", "proc_cpu_a", "proc_cpu_b"):
        out[col] = np.nan
    out["host"] = ""
    for i, r in out.iterrows():
        if r["metric"] != "output_tok_s" or r["verdict"] not in ("faster", "slower"):
            continue
        key = tuple(r[k] for k in keys)
        key = key if len(key) > 1 else key[0]
        if key not in ma.index or key not in mb.index:
            continue
        side = {"A": ma.loc[key].to_numpy(float), "B": mb.loc[key].to_numpy(float)}  # (util, cpu)
        out.loc[i, ["util_gpu_a", "util_gpu_b", "proc_cpu_a", "proc_cpu_b"]] = [
            side["A"][0], side["B"][0], side["A"][1], side["B"][1]]
        slow, fast = ("B", "A") if r["verdict"] == "slower" else ("A", "B")
        (us, cs), (uf, cf) = side[slow], side[fast]
        if uf - us >= HOST_UTIL_DROP_PTS and cs >= HOST_CPU_KEPT * cf:
            out.loc[i, "host"] = f"{slow} waited on its host"
    return out


def host_note(rows: pd.DataFrame) -> str | None:
    """One line over the throughput rows the host explains, per model and precision."""
    if "host" not in rows:
        return None
    tp = rows[(rows["metric"] == "output_tok_s") & rows["verdict"].isin(["faster", "slower"])]
    hit = tp[tp["host"] != ""]
    if hit.empty:
        return None
    parts = []
    for (model, precision), g in hit.groupby(["model", "precision"], sort=False):
        n_all = int(((tp["model"] == model) & (tp["precision"] == precision)).sum())
        side = g["host"].iloc[0].split()[0]
        slow, fast = ("b", "a") if side == "B" else ("a", "b")
        m = g[[f"util_gpu_{slow}", f"util_gpu_{fast}", f"proc_cpu_{slow}", f"proc_cpu_{fast}"]].mean().to_numpy()
        parts.append(f"{model} {precision}: {len(g)} of {n_all} differing throughput rows, {side} slower with the "
                     f"GPU busy {m[0]:.0f}% of the time against {m[1]:.0f}% at {m[2]:.0f}% vs {m[3]:.0f}% "
                     f"engine-process CPU")
    return HOST_NOTE + "; ".join(parts)
