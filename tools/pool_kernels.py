"""The kernels the step anatomy recorded, from a measurement pool alone.

    python tools/pool_kernels.py POOL_DIR OUT.csv

One row per (engine, batch, kernel name) of every anatomy window the pool holds:
the class ``anatomy.classify`` gives the name, how many times it ran in the window
and per profiled step (the window's ``steps``, from the job's parameters), and its
time. For a pool whose notebooks never ran (a lent machine's calls ran out): it
shows which kernels a GPU's trace holds and how they are classified, apart from
the window's step count and wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from slmstudy.anatomy import classify


def table(pool: Path) -> pd.DataFrame:
    rows = []
    for events_file in sorted(pool.glob("*/tables/anatomy_events.parquet")):
        events = pd.read_parquet(events_file)
        windows = pd.read_parquet(events_file.with_name("anatomy.parquet")).set_index("batch")
        for (config, batch), g in events.groupby(["config", "batch"], sort=False):
            steps = int(windows.loc[batch, "steps"])
            by = g.groupby(["name", "memcpy"], sort=False)["dur_us"].agg(["size", "sum"]).reset_index()
            for _, r in by.iterrows():
                rows.append({"config": config, "precision": g["precision"].iloc[0], "batch": int(batch),
                             "class": classify.kernel_class(r["name"], bool(r["memcpy"])), "name": r["name"],
                             "calls": int(r["size"]), "calls_per_step": r["size"] / steps,
                             "total_us": round(float(r["sum"]), 1)})
    out = pd.DataFrame(rows)
    return out.sort_values(["config", "batch", "total_us"], ascending=[True, True, False]) if len(out) else out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    t = table(Path(sys.argv[1]))
    t.to_csv(sys.argv[2], index=False)
    print(f"{sys.argv[2]}: {len(t)} rows")
