"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_with(path: Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def build_folder(folder: Path, marker: str, builder: Callable[[Path], None]) -> Path:
    """A folder built once and shared: ``builder(tmp)`` fills a temporary folder
    beside it, which is then renamed into place, so a concurrent run never sees
    half a folder. ``marker`` is a file whose presence means "already built"."""
    import shutil

    folder = Path(folder)
    if (folder / marker).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        builder(tmp)
        tmp.rename(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / marker).is_file():  # not a lost race with another run: a real error
            raise
    return folder


def write_text(path: Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_table(df: Any, stem: Path, csv: bool = True) -> list[Path]:
    """A pandas DataFrame as ``stem.parquet`` (typed) and ``stem.csv`` (for any tool).

    List-valued columns (e.g. every inter-token gap of a request) go to Parquet
    only; the CSV keeps the scalar columns.
    """
    stem = Path(stem)
    out = [write_with(stem.with_suffix(".parquet"), lambda tmp: df.to_parquet(tmp, index=False))]
    if csv:
        scalar = df[[c for c in df.columns if not _is_list_column(df[c])]]
        out.append(write_with(stem.with_suffix(".csv"), lambda tmp: scalar.to_csv(tmp, index=False)))
    return out


def _is_list_column(series: Any) -> bool:
    import numpy as np

    if series.dtype != object:
        return False
    non_null = series.dropna()
    return not non_null.empty and isinstance(non_null.iloc[0], (list, tuple, np.ndarray))
