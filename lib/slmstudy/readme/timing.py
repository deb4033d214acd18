"""The study's time, from the committed timing table (``study_timing.csv``): the
results line and, when it is over the 15-minute target, the limitation."""

from __future__ import annotations

import pandas as pd

from .common import link, reference_dir


# ----------------------------------------------------------------- sections
def study_minutes(t: pd.DataFrame) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    """(minutes, jobs measured, notebooks) of a study timing table: the sum of its
    calls' totals (one per call of the lent machine; a job reused by a later call
    counts once), or, for a pool analysed elsewhere (``tools/pool_timing.py``: no
    total rows), the jobs' and notebooks' own times."""
    reused = t["reused"].fillna(False).astype(bool) if "reused" in t else pd.Series(False, index=t.index)
    jobs = t[~t["kind"].isin(["notebook", "total"]) & ~reused]
    nbs = t[t["kind"] == "notebook"]
    totals = t.loc[t["kind"] == "total", "wall_s"]
    total = float(totals.sum()) if len(totals) else float(jobs["wall_s"].sum() + nbs["wall_s"].sum())
    return total / 60, jobs, nbs


def where_ran(t: pd.DataFrame, jobs: pd.DataFrame, nbs: pd.DataFrame) -> str:
    """" (machine A: x min; machine B: y min)" when the jobs and notebooks ran on different machines."""
    if "machine" not in t or t["machine"].nunique() <= 1:
        return ""
    return " (" + "; ".join(f"{k}: {g['wall_s'].sum() / 60:.1f} min" for k, g in
                            pd.concat([jobs, nbs]).groupby("machine", sort=False)) + ")"


def time_split(jobs: pd.DataFrame, nbs: pd.DataFrame, total_s: float | None = None) -> str:
    """"cold starts 3.6 min, ..." from a study timing table's job and notebook rows. With the
    study's wall time (``total_s``) the notebooks' part is what the jobs left of it: they
    run side by side, so their own times add up to more than the wall they took."""
    def col(df: pd.DataFrame, c: str) -> float:
        return float(df[c].fillna(0).sum()) if c in df else 0.0

    engines = jobs[jobs["kind"] == "engine"]
    cold = engines[engines["job"].str.endswith("__cold")]
    warm = engines.drop(cold.index)
    parts = [("cold engine starts (01)", col(cold, "wall_s")),
             ("other engines' vLLM imports and starts", col(warm, "import_s") + col(warm, "engine_start_s")),
             ("offline measuring", col(warm, "measure_s")),
             ("the rest of the offline jobs (launch, shutdown, memory back)",
              col(warm, "wall_s") - col(warm, "import_s") - col(warm, "engine_start_s") - col(warm, "measure_s")),
             ("servers (start and load levels)", col(jobs[jobs["kind"] == "serve"], "wall_s")),
             ("GGUF files and llama.cpp", col(jobs[jobs["kind"].isin(["edge", "gguf_file"])], "wall_s")),
             ("probes", col(jobs[jobs["kind"].isin(["hardware", "overhead_probe"])], "wall_s")),
             *([("notebooks (side by side) and the gaps between jobs", total_s - col(jobs, "wall_s"))]
               if total_s is not None and col(nbs, "wall_s") > total_s - col(jobs, "wall_s")
               else [("notebooks", col(nbs, "wall_s"))])]
    return ", ".join(f"{name} {sec / 60:.1f} min" for name, sec in parts if sec > 0)


def untimed(nbs: pd.DataFrame) -> str:
    """" (without 06_edge: ...)" for study notebooks the timing table lacks (a sitting
    that ran part of the study; those folders name their own commits)."""
    from ..experiments import registry

    missing = [nb for nb in registry.MODULES if nb not in set(nbs["job"])]
    if not missing:
        return ""
    return (f" without {', '.join(f'`{nb}`' for nb in missing)} (not in the sitting this table is from; "
            "its folder names the commit that measured it)")


def timing_lines() -> list[str]:
    path = reference_dir() / "study_timing.csv"
    if not path.exists():
        return ["* **Study time**: no timing table committed yet (`outputs/reference/h100/study_timing.csv`)."]
    t = pd.read_csv(path)
    minutes, jobs, nbs = study_minutes(t)
    start = jobs["engine_start_s"].fillna(0).sum() + jobs.get("import_s", pd.Series(dtype=float)).fillna(0).sum()
    where = where_ran(t, jobs, nbs)
    return [f"* **The whole study took {minutes:.1f} min**{where}{untimed(nbs)}: {len(jobs)} measurement jobs on the H100, "
            f"{len(nbs)} notebooks; vLLM imports and engine starts {start / 60:.1f} min of it. "
            f"{link(path)} splits each job into launch, vLLM import, engine start (weight loading, "
            "`torch.compile`, CUDA graphs), measuring and teardown."]


def timing_limitation() -> list[str]:
    """The study's time where it is over the 15-minute target, with where it goes."""
    path = reference_dir() / "study_timing.csv"
    if not path.exists():
        return []
    t = pd.read_csv(path)
    total, jobs, nbs = study_minutes(t)
    if total < 15:
        return []
    edge = float(jobs.loc[jobs["kind"].isin(["edge", "gguf_file"]), "wall_s"].sum()) / 60
    why = (f" The one part large enough to close the gap, 06_edge's {edge:.1f} min of GGUF files and llama.cpp on "
           "the CPU cores, runs alone by design (`measure/slots.py`: host-wide jobs never overlap another; "
           "llama.cpp's threads beside a host-bound engine would disturb both measurements)."
           if edge > 0 else "")
    return [f"* **The GPU study takes {total:.1f} min**{where_ran(t, jobs, nbs)}{untimed(nbs)}, over the 15-minute "
            f"target. Where the time goes ({link(path)}): {time_split(jobs, nbs, 60 * total)}. Each part is a "
            "measurement the gpu profiles ask for (the cold starts are 01's; each precision compiles "
            "its own graphs); the opt-in layers are not in it." + why]
