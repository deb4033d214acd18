"""Copy the small, reviewable part of a run folder into outputs/reference/.

    python tools/make_reference.py RUN_FOLDER outputs/reference/h100/03_batch_scaling [--lean]

Kept: parameters, environment and provenance, the executed notebook and its HTML
rendering, every table (the per-request table without its per-token gap lists,
which stay in the full run folder), figures, and per job its status, spec, logs
and small results (bench latency, hardware probe, client calls). Left out: the
per-job copies of tables (the same rows are in the run-level tables/) and dot
files. ``--lean`` keeps tables, parameters and job records only (no notebook,
HTML or figures): the CPU reference that CI's runs are compared with.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

KEEP_SUFFIXES = {".json", ".yaml", ".csv", ".md", ".png", ".svg", ".log", ".ipynb", ".html", ".txt"}
LEAN_SKIP = {".png", ".svg", ".ipynb", ".html"}
MAX_BYTES = 4 << 20


def main(src: Path, dest: Path, lean: bool = False) -> int:
    if dest.exists():
        shutil.rmtree(dest)
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts) or rel.name == "papermill.log":
            continue
        if rel.parts[0] == "configs" and "tables" in rel.parts:
            continue  # the same rows are in the run-level tables/
        if lean and rel.suffix in LEAN_SKIP:
            continue
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
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    sys.exit(main(Path(args[0]), Path(args[1]), lean="--lean" in sys.argv))
