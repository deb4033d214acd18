"""Copy the small, reviewable part of a run folder into outputs/reference/.

    python tools/make_reference.py RUN_FOLDER outputs/reference/h100/03_batch_scaling [--lean]

Kept: parameters, environment and provenance, the executed notebook (its figures
embedded), every table (the per-request table without its per-token gap lists,
which stay in the full run folder), and per job its status, spec, logs and small
results (bench latency, hardware probe, client calls); a figure's PNG only where
the project's Markdown links it (README.md's headline figures).

Left out: the notebook's HTML rendering and the figures' SVG and PNG files (the
executed notebook holds every figure; ``python -m slmstudy html`` or nbconvert
renders it again), the per-job copies of tables (the same rows are in the
run-level tables/) and dot files. Why: every device call carries the whole
tracked tree in 64 MiB, and a GPU's references with every rendering took 42 MiB
of it (2026-12-06), so a second GPU's would not have fitted at all.
``--lean`` keeps tables, parameters and job records only (no notebook or
figures): the CPU reference that CI's runs are compared with.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pandas as pd

KEEP_SUFFIXES = {".json", ".yaml", ".csv", ".md", ".log", ".ipynb", ".txt"}
LEAN_SKIP = {".ipynb"}
MAX_BYTES = 4 << 20
ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+\.png)\)")


def linked_figures(root: Path = ROOT) -> set[str]:
    """Repository-relative paths of the PNGs the project's Markdown shows."""
    pages = [root / "README.md", *root.glob("docs/*.md"), *root.glob("outputs/reference/*/README.md")]
    found: set[str] = set()
    for page in pages:
        if page.exists():
            for target in LINK.findall(page.read_text()):
                found.add(_repo_path(page.parent / target, root))
    return found


def main(src: Path, dest: Path, lean: bool = False, root: Path = ROOT) -> int:
    shown = set() if lean else linked_figures(root)
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
        elif rel.suffix in KEEP_SUFFIXES or _repo_path(out, root) in shown:
            shutil.copy2(path, out)
        else:
            continue
        if out.stat().st_size > MAX_BYTES:
            print(f"warning: {rel} is {out.stat().st_size >> 20} MiB", file=sys.stderr)
    for empty in sorted((d for d in dest.rglob("*") if d.is_dir()), reverse=True):
        if not any(empty.iterdir()):
            empty.rmdir()
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"{dest}: {total / 2**20:.1f} MiB")
    return 0


def _repo_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return ""


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    sys.exit(main(Path(args[0]), Path(args[1]), lean="--lean" in sys.argv))
