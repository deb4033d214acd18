"""What a run would measure, without measuring: ``python -m slmstudy run --plan``.

The plan's jobs in the order they would run, each with what the measurement pool
holds for it: an entry this code measured (reused), entries that do not count and
why (another commit measured them, a run that did not finish, a failure), or
nothing. Each job that would be measured carries how long its newest entry took,
whatever code measured it, and how long the same job (same parameters: the pool
entry's digest) took in the committed references, so a machine lent for a fixed
time (the GPU host's calls and sessions) can be planned from what the plan itself
took before, not from a guess. Pure apart from reading the pool and the references'
timing tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..jobs import Job
from ..results.pool import Pool


def reference_times(root: Path) -> dict[str, tuple[float, str]]:
    """Pool entry name (job key and digest) -> (seconds, commit) of its newest row in
    the timing tables of the run folders under ``root`` (committed references)."""
    found: dict[str, tuple[float, float, str]] = {}
    for path in sorted(root.rglob("tables/timing.csv")):
        t = pd.read_csv(path)
        if not {"pool_entry", "wall_s", "measured_at"} <= set(t):
            continue
        for _, r in t.dropna(subset=["pool_entry", "wall_s"]).iterrows():
            at = float(r["measured_at"]) if pd.notna(r["measured_at"]) else 0.0
            if r["pool_entry"] not in found or at > found[r["pool_entry"]][1]:
                found[r["pool_entry"]] = (float(r["wall_s"]), at, str(r.get("git_commit") or "")[:7])
    return {k: (v[0], v[2]) for k, v in found.items()}


def rows(jobs: Sequence[Job], pool: Pool, identity_label: str, reuse_older: bool = False,
         references: dict[str, tuple[float, str]] | None = None) -> list[dict[str, Any]]:
    out = []
    for i, job in enumerate(jobs, 1):
        ref = (references or {}).get(pool.entry(job).dir.name)
        found = pool.find(job, identity_label, reuse_older)
        latest = pool.latest(job)
        status = (latest.status or {}) if latest else {}
        wall = (status.get("timing") or {}).get("wall_s")
        out.append({
            "index": i, "job": job.key, "kind": job.kind,
            "measure": found.entry is None,
            "pool": (f"reused ({found.entry.identity})" if found.entry is not None
                     else "; ".join(found.reasons) or "not in the pool"),
            "last_wall_s": float(wall) if wall is not None else None,
            "last_by": status.get("identity_label"),
            "reference_wall_s": ref[0] if ref else None,
            "reference_by": ref[1] if ref else None,
        })
    return out


def summary(table: list[dict[str, Any]]) -> str:
    """One line: how many jobs would be measured and how long they took before (their
    newest pool entries, else the references)."""
    todo = [r for r in table if r["measure"]]
    known = [r["last_wall_s"] if r["last_wall_s"] is not None else r["reference_wall_s"] for r in todo]
    known = [k for k in known if k is not None]
    text = f"{len(todo)} of {len(table)} jobs to measure"
    if known:
        text += f"; they took {sum(known):,.0f} s before"
        if len(known) < len(todo):
            text += f" ({len(todo) - len(known)} with no earlier run of these exact parameters)"
    elif todo:
        text += "; none run before with these exact parameters"
    return text


def _seconds(v: float | None) -> str:
    return f"{v:.0f} s" if v is not None else "-"


def render(table: list[dict[str, Any]]) -> str:
    refs = [_seconds(r["reference_wall_s"]) + (f" ({r['reference_by']})" if r["reference_by"] else "")
            for r in table]
    width = max((len(r["job"]) for r in table), default=3)
    kind = max((len(r["kind"]) for r in table), default=4)
    rw = max([len("reference"), *map(len, refs)])
    lines = [f"{'#':>3}  {'job':<{width}}  {'kind':<{kind}}  {'pool took':>9}  {'reference':>{rw}}  pool"]
    for r, ref in zip(table, refs):
        lines.append(f"{r['index']:>3}  {r['job']:<{width}}  {r['kind']:<{kind}}  {_seconds(r['last_wall_s']):>9}  "
                     f"{ref:>{rw}}  {r['pool']}")
    return "\n".join(lines)
