"""Copy the small, reviewable part of a run folder into outputs/reference/.

    python tools/make_reference.py RUN_FOLDER outputs/reference/h100/03_batch_scaling

Kept: parameters, environment, the executed notebook, every table (the
per-request table without its per-token gap lists, which stay in the full run
folder), figures, the engine logs, status and spec of every configuration, and
the JSON results (cross-checks, hardware probe, roofline, claims). Left out:
raw journals and telemetry streams (their content is in the tables) and compile
caches.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

KEEP_SUFFIXES = {".json", ".yaml", ".csv", ".md", ".png", ".svg", ".log", ".ipynb"}
SKIP_PARTS = {"compile-cache"}
MAX_BYTES = 4 << 20


def main(src: Path, dest: Path) -> int:
    if dest.exists():
        shutil.rmtree(dest)
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if not path.is_file() or SKIP_PARTS & set(rel.parts) or rel.name.startswith("."):
            continue
        if rel.parts[0] == "configs" and "tables" in rel.parts:
            continue  # the same rows are in the run-level tables/
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix == ".parquet":
            df = pd.read_parquet(path)
            if "itl_s" in df:
                df = df.drop(columns=["itl_s"])
            df.to_parquet(out, index=False)
        elif rel.suffix in KEEP_SUFFIXES:
            shutil.copy2(path, out)
        else:
            continue
        if out.stat().st_size > MAX_BYTES:
            print(f"warning: {rel} is {out.stat().st_size >> 20} MiB", file=sys.stderr)
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"{dest}: {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
