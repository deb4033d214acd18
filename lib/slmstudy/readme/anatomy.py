"""The step anatomy's README lines: what limits a decode step, per model or
precision, and where the sum check misses (with the profiler's cost)."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from .. import catalog
from ..results.run_folder import RunView
from .common import display_name, reference_view


@functools.lru_cache(maxsize=8)
def analysed(folder: Path, stamp: tuple[int, int]) -> pd.DataFrame:
    """A committed folder's step-anatomy summary, analysed once per
    ``docs`` run (the results and limitations blocks both read them; ``stamp``, the
    event table's mtime and size, keeps a changed reference from being read stale)."""
    from ..experiments import anatomy_report

    return anatomy_report.analyse(RunView(folder))[0]


def summary(v: RunView) -> pd.DataFrame:
    st = (v.dir / "tables" / "anatomy_events.parquet").stat()
    return analysed(v.dir, (st.st_mtime_ns, st.st_size))


def anatomy_lines(nb: str = "03_batch_scaling", by: str = "model") -> list[str]:
    """The step anatomy: what limits the smallest and the largest batch, per model (03)
    or precision (02), by the notebooks' written rule (``anatomy_report.limit_of``)."""
    v = reference_view(nb)
    if v is None or v.table("anatomy").empty:
        return []
    from ..experiments import anatomy_report

    s = anatomy_report.verdicts(summary(v))
    if "limit" not in s or s["limit"].isna().all():
        return []
    s = s[s["limit"].notna()]
    out = []
    for g in dict.fromkeys(s[by]):
        rows = s[s[by] == g].sort_values("batch")
        said = []
        for _, r in rows.iloc[[0, -1]].drop_duplicates("batch").iterrows():
            said.append(f"batch {int(r['batch'])} {r['limit']} ({r['measured_step_ms']:.2f} ms a step, the device "
                        f"idle {100 * anatomy_report.host_share(r):.0f}% of it, kernels {r['classes_ms'] / r['class_bounds_ms']:.1f}x "
                        "their own bounds)")
        out.append(f"{display_name(g) if by == 'model' else catalog.precision(g).display}: " + ", ".join(said))
    ok = int((s["sum_check"] == "ok").sum())
    cost = (f" (the profiler's own cost: a profiled step {s['profiler_cost_pct'].min():+.0f}% to "
            f"{s['profiler_cost_pct'].max():+.0f}% against the measured one; the idle shares above are the "
            "measured step less the kernels' time)") if "profiler_cost_pct" in s and ok < len(s) else ""
    return [f"* **Where a decode step's time goes** (`{nb}`'s step anatomy: torch's profiler over "
            f"{int(v.table('anatomy')['steps'].iloc[0])} decode steps, every kernel classified): " + "; ".join(out)
            + f". Classes + idle match the measured step within 5% in {ok} of {len(s)} windows{cost}."]


def anatomy_limitations() -> list[str]:
    """The step anatomy's sum check (classes + idle within 5% of the measured step)
    where the references miss it, with the profiler's cost that explains it."""
    out = []
    for nb in ("03_batch_scaling", "02_precision"):
        v = reference_view(nb)
        if v is None or v.table("anatomy").empty:
            continue
        s = summary(v)
        s = s[s["sum_check"].isin(["ok", "off"])] if "sum_check" in s else s.iloc[0:0]
        off = s[s["sum_check"] == "off"]
        if off.empty:
            continue
        longer, shorter = off[off["profiler_cost_pct"] > 0], off[off["profiler_cost_pct"] < 0]
        said = []
        own = "profiler_cost_basis" in off and (off["profiler_cost_basis"] == "unprofiled steps").all()
        basis = "the same batch's unprofiled steps" if own else "the sweep's step"
        if len(longer):
            c = longer["profiler_cost_pct"]
            said.append(f"in {len(longer)} the profiler's own host work lengthens a profiled step by {c.min():+.0f}% "
                        f"to {c.max():+.0f}% (median {c.median():+.0f}%) against {basis}, all of it device idle "
                        "time (the kernels' times are the device's)")
        if len(shorter):
            said.append(f"in {len(shorter)} the profiled step is the shorter (down to "
                        f"{shorter['profiler_cost_pct'].min():+.0f}%): the host was faster during the window than "
                        f"during {'the steps around it' if own else 'the sweep'}")
        out.append(f"* **The step anatomy's sum check** (`{nb}`): classes + idle are within 5% of the measured "
                   f"step in {len(s) - len(off)} of {len(s)} windows; " + "; ".join(said) + ". The verdicts "
                   "therefore read the measured step less the kernels' time (`host_share`), an estimate that holds "
                   "while profiling leaves the kernels' durations alone.")
    return out
