"""The worker's journal: one JSON object per line, appended and flushed as work
happens, so a crash or a kill keeps everything measured before it.

Record types: ``config`` (what was asked), ``telemetry`` (sampler backend),
``engine`` (start-up facts), ``phase`` (a named interval in wall-clock time,
aligned with the telemetry trace), ``run`` (one measured repetition with its
requests), ``point_error``, ``overhead`` (telemetry on/off pairs), ``harness``
(streamed vs final-only pairs), ``anatomy`` (a profiled window of decode steps:
its step starts and device events),
``engine_after`` (memory after the workload) and ``fatal``.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = open(self.path, "a", buffering=1)  # line-buffered

    def write(self, type: str, **fields: Any) -> None:
        self._fh.write(json.dumps({"type": type, "t": time.time(), **fields}, default=str) + "\n")
        self._fh.flush()

    @contextlib.contextmanager
    def phase(self, name: str, **labels: Any) -> Iterator[dict[str, Any]]:
        """Record [t0, t1] of a block in wall-clock seconds (the sampler's clock).

        The yielded dict can receive extra fields before the record is written.
        """
        extra: dict[str, Any] = {}
        t0 = time.time()
        ok = False
        try:
            yield extra
            ok = True
        finally:
            self.write("phase", name=name, t0=t0, t1=time.time(), ok=ok, **labels, **extra)

    def close(self) -> None:
        self._fh.close()


class Relayed(Exception):
    """An error a child process reported ("Type: message"), journaled as it wrote it."""


def run_journaled(journal: Journal, work: Callable[[], Any]) -> int:
    """A worker's whole job: 0 when ``work`` returns; on any exception its cause is
    journaled as ``fatal`` (with the traceback), printed to the log, and 1 returned.
    The journal is closed either way."""
    try:
        work()
    except BaseException as exc:
        error = str(exc) if isinstance(exc, Relayed) else f"{type(exc).__name__}: {exc}"
        journal.write("fatal", error=error, traceback=traceback.format_exc())
        traceback.print_exc()
        return 1
    finally:
        journal.close()
    return 0


def read(path: Path) -> list[dict[str, Any]]:
    """All complete records; a line cut short by a crash is ignored."""
    out = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
