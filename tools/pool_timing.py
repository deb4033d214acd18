"""Where a study's measuring time went, from a measurement pool alone.

    python tools/pool_timing.py POOL_DIR OUT.csv

One row per job the pool holds complete (its ``status.json``): the same split the
study's own timing table has (launch, vLLM import, engine start with weight
loading, torch.compile and CUDA graphs, measurement, shutdown), for a pool whose
study never reached its notebooks (a lent machine's calls ran out) or was carried
back from another machine. Sorted by when each job was measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from slmstudy.results import timing


def table(pool: Path) -> pd.DataFrame:
    rows = []
    for status_file in sorted(pool.glob("*/status.json")):
        st = json.loads(status_file.read_text())
        spec = json.loads((status_file.parent / "spec.json").read_text())
        engine = spec.get("engine") or {}
        labels = {"model": engine.get("model"), "precision": engine.get("precision")} if engine else {}
        key = status_file.parent.name.rsplit("-", 1)[0]
        rows.append({**timing.row(key, spec["kind"], labels, st["status"], st.get("timing") or {}),
                     "git_commit": (st.get("identity") or {}).get("git_commit"),
                     "finished_at": st.get("finished_at")})
    return pd.DataFrame(rows).sort_values("finished_at", kind="stable").reset_index(drop=True)


def main(pool: Path, out: Path) -> int:
    t = table(pool)
    t.to_csv(out, index=False, float_format="%.1f")
    print(f"{len(t)} jobs, {t['wall_s'].sum():.0f} s measured in all -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
