"""What every generated README section reads: the committed reference folders and
how their numbers are written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .. import catalog, paths, stats
from ..display import number
from ..results.run_folder import RunView


def reference_dir(machine: str = "h100") -> Path:
    return paths.reference_dir() / machine


def reference_view(nb: str, machine: str = "h100") -> RunView | None:
    folder = reference_dir(machine) / nb
    return RunView(folder) if (folder / "tables").is_dir() else None


def display_name(model: str) -> str:
    return catalog.model(model).display


def ci_text(values: pd.Series, fmt: Callable[[float], str] = number) -> str:
    m, lo, hi, n = stats.mean_ci(values.to_numpy(float))
    return f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" if n > 1 else fmt(m)


def mean_of(df: pd.DataFrame, col: str, **where: Any) -> float:
    for k, v in where.items():
        df = df[df[k] == v]
    return float(df[col].mean()) if len(df) else float("nan")


def link(path: Path) -> str:
    rel = path.relative_to(paths.project_root()) if path.is_relative_to(paths.project_root()) else path
    return f"[`{rel}`]({rel})"


def params_of(view: RunView) -> dict[str, Any]:
    return (view.params_file() or {}).get("params", {})


def commit_of(view: RunView) -> str:
    return (view.environment().get("git_commit") or "")[:7] or "an unrecorded commit"


class FolderStudy:
    """A committed run folder as the notebooks' analysis functions read a study: its
    typed parameters (``schema``, the notebook's ``Params``) and its tables. The
    README quotes a layer through the same functions its notebook runs, so the two
    cannot say different things."""

    def __init__(self, view: RunView, schema: Any):
        self.params = schema.model_validate(params_of(view))
        self.table = view.table
