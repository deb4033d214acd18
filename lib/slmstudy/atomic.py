"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: setting and restoring the umask is not safe while other threads create files.
UMASK = _umask()


def write_with(path: Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp)`` on a temporary file beside ``path``, then rename it into
    place. The file gets the permissions the umask gives a new file (a temporary
    file is created private, 0600, which would otherwise stick)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, 0o666 & ~UMASK)
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


class Busy(RuntimeError):
    """Another process holds the lock; ``owner`` says who (pid and since when)."""

    def __init__(self, owner: str):
        self.owner = owner
        super().__init__(owner)


@contextlib.contextmanager
def exclusive(path: Path, on_busy: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (the kernel releases it when the holder dies,
    so a dead owner's lock is simply taken over). When another process holds it:
    with ``on_busy``, tell it who and wait; without, raise ``Busy``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "pid unknown"
            if on_busy is None:
                raise Busy(owner) from None
            on_busy(owner)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        yield
