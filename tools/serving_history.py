#!/usr/bin/env python3
"""Write ``outputs/reference/h100/serving_history.csv``: every H100 sitting's 04_serving
levels that git holds, one row per sitting, model and level (``results.serving_history``).

    python tools/serving_history.py [--out PATH]

It reads committed references only, out of git (``git show``), so the table can be
regenerated from any clone: each commit that changed a ``04_serving`` reference folder
(the references' own and the retired ``rerun_<commit>/`` ones) gives that folder's
levels, named by the commit that measured them (its configs' record, else its
``environment.json``'s). ``slmstudy docs`` quotes the table.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from slmstudy.results.serving_history import history, sitting_rows  # noqa: E402

REFS = "outputs/reference/h100"
PATTERNS = [f"{REFS}/04_serving/tables/levels.csv", f"{REFS}/rerun_*/04_serving/tables/levels.csv"]


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout


def show(commit: str, path: str) -> str | None:
    try:
        return git("show", f"{commit}:{path}")
    except subprocess.CalledProcessError:
        return None


def measured_by(commit: str, folder: str) -> str | None:
    """The commit the folder's configs record (one, or None when they name none or several)."""
    text = show(commit, f"{folder}/tables/configs.csv")
    if not text:
        return None
    cfg = pd.read_csv(io.StringIO(text))
    found = set(cfg["git_commit"].dropna()) if "git_commit" in cfg else set()
    return found.pop() if len(found) == 1 else None


def sittings() -> list[pd.DataFrame]:
    out = []
    for commit in git("log", "--format=%H", "--reverse", "--", *PATTERNS).split():
        for path in git("ls-tree", "-r", "--name-only", commit, "--", REFS).split():
            if not path.endswith("04_serving/tables/levels.csv"):
                continue
            folder = path.removesuffix("/tables/levels.csv")
            env = json.loads(show(commit, f"{folder}/environment.json") or "{}")
            levels = pd.read_csv(io.StringIO(show(commit, path) or ""))
            out.append(sitting_rows(levels, env, measured_by(commit, folder)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / REFS / "serving_history.csv"))
    args = ap.parse_args()
    table = history(sittings())
    table.to_csv(args.out, index=False)
    print(f"{len(table)} rows from {table['measured_at'].nunique()} sittings -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
