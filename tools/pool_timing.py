"""Where a study's measuring time went, from a measurement pool alone.

    python tools/pool_timing.py POOL_DIR OUT.csv [--notebooks STUDY_TIMING_CSV]

One row per job the pool holds complete (its ``status.json``): the same split the
study's own timing table has (launch, vLLM import, engine start with weight
loading, torch.compile and CUDA graphs, measurement, shutdown), for a pool whose
study never reached its notebooks (a lent machine's calls ran out) or was carried
back from another machine. Sorted by when each job was measured; ``machine`` says
where (the GPU, else the CPU, its environment.json recorded).

``--notebooks`` appends the notebook rows of a study's own timing table (a run
with ``--measured-on`` that analysed this pool elsewhere), with this machine's name:
the study's time is then the jobs' plus the notebooks', each where it ran.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from slmstudy.results import timing
from slmstudy.telemetry.cpu_reader import CpuReader


def table(pool: Path) -> pd.DataFrame:
    rows = []
    for status_file in sorted(pool.glob("*/status.json")):
        st = json.loads(status_file.read_text())
        spec = json.loads((status_file.parent / "spec.json").read_text())
        engine = spec.get("engine") or {}
        labels = {"model": engine.get("model"), "precision": engine.get("precision")} if engine else {}
        key = status_file.parent.name.rsplit("-", 1)[0]
        env_file = status_file.parent / "environment.json"
        env = json.loads(env_file.read_text()) if env_file.exists() else {}
        rows.append({**timing.row(key, spec["kind"], labels, st["status"], st.get("timing") or {}),
                     "git_commit": (st.get("identity") or {}).get("git_commit"),
                     "machine": env.get("gpu_name") or env.get("cpu_model"), "finished_at": st.get("finished_at")})
    return pd.DataFrame(rows).sort_values("finished_at", kind="stable").reset_index(drop=True)


def with_notebooks(jobs: pd.DataFrame, study_timing: Path) -> pd.DataFrame:
    nbs = pd.read_csv(study_timing)
    cpu = CpuReader().device_info()
    nbs = nbs[nbs["kind"] == "notebook"].assign(machine=f"{cpu['cpu_model']} x{cpu['cpu_count_logical']} "
                                                        "(notebooks, measuring nothing)")
    return pd.concat([jobs, nbs], ignore_index=True)


def main(pool: Path, out: Path, notebooks: Path | None = None) -> int:
    t = table(pool)
    if notebooks is not None:
        t = with_notebooks(t, notebooks)
    t.to_csv(out, index=False, float_format="%.1f")
    print(f"{len(t)} rows, {t['wall_s'].sum():.0f} s in all -> {out}")
    return 0


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pool", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--notebooks", type=Path, help="a study's timing.csv whose notebook rows to append")
    a = ap.parse_args()
    sys.exit(main(a.pool, a.out, a.notebooks))
