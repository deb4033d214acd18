"""The measurement pool: every job a study ran, once, shared by the notebooks.

A job (an engine with its points, a ``vllm bench latency`` run, a server under
load, a hardware probe) gets a folder ``<runs>/pool/<job key>-<digest>/`` with its
raw files, its tables and, written last, ``status.json``. A notebook never
measures a job the pool already holds: the whole study plan runs each engine
once with the union of the points every notebook asks of it, and a notebook
copies the rows of its own points into its run folder.

"Done" means complete: the status says ok, names the code that measured
(``identity``) and carries a manifest of every file it covers (bytes, and rows
for tables); a missing, truncated or changed file makes the entry incomplete,
and the job is measured again with a line saying why. Results of other code (a
different commit, a changed tree, another vLLM) are measured again unless the
caller explicitly reuses them.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import paths
from ..atomic import exclusive, write_json, write_table
from ..engine import procs
from ..engine.runner import RunResult
from ..jobs import Job, load_job
from .environment import identity_label

STATUS = "status.json"
MANIFEST_SKIP = {STATUS, ".lock", "running.json"}


class PoolBusy(RuntimeError):
    """Processes of an earlier run of a job are still alive."""


def manifest(folder: Path) -> dict[str, dict[str, int]]:
    """Every file of the entry (but the status and lock): bytes, and rows for tables."""
    out: dict[str, dict[str, int]] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or rel in MANIFEST_SKIP or path.name.startswith("."):
            continue
        item = {"bytes": path.stat().st_size}
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            item["rows"] = pq.ParquetFile(path).metadata.num_rows
        out[rel] = item
    return out


def verify(folder: Path, expected: dict[str, dict[str, int]]) -> str | None:
    """Why the folder does not hold what its manifest says, or None when it does."""
    for rel, item in expected.items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        size = path.stat().st_size
        if size != item["bytes"]:
            return f"{rel} has {size} bytes, the manifest says {item['bytes']}"
        if "rows" in item:
            try:
                import pyarrow.parquet as pq

                rows = pq.ParquetFile(path).metadata.num_rows
            except Exception as exc:
                return f"{rel} cannot be read ({type(exc).__name__})"
            if rows != item["rows"]:
                return f"{rel} has {rows} rows, the manifest says {item['rows']}"
    return None


@dataclass
class Entry:
    dir: Path

    @property
    def status(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.dir / STATUS).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def job(self) -> Job | None:
        try:
            return load_job(self.dir / "spec.json")
        except (FileNotFoundError, ValueError):
            return None

    def problem(self) -> str | None:
        """None when complete; else why not (no status, a file missing or changed)."""
        st = self.status
        if st is None:
            return "no status.json (the run did not finish)"
        return verify(self.dir, st.get("manifest") or {})

    def table(self, name: str) -> pd.DataFrame:
        path = self.dir / "tables" / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    @property
    def ok(self) -> bool:
        st = self.status
        return bool(st and st.get("status") == "ok")

    @property
    def identity(self) -> str | None:
        st = self.status
        return st.get("identity_label") if st else None


@dataclass
class Found:
    """The outcome of a lookup: the entry to use, or why none would do."""

    entry: Entry | None
    reasons: list[str] = field(default_factory=list)


class Pool:
    def __init__(self, root: Path | None = None, leftover_wait_s: float = 20.0):
        self.root = Path(root) if root else paths.runs_dir() / "pool"
        # how long a run waits for a killed run's processes to be stopped by their watchdog
        self.leftover_wait_s = leftover_wait_s

    def cache_root(self, model: str) -> Path:
        """One compile-cache root per model, shared by all its engines (``engine.caches``);
        ``SLMSTUDY_COMPILE_CACHE`` puts it elsewhere (the GPU tests reuse a study's)."""
        base = os.environ.get("SLMSTUDY_COMPILE_CACHE")
        return (Path(base) if base else self.root / "compile-cache") / model

    def entry(self, job: Job) -> Entry:
        return Entry(self.root / f"{job.key}-{job.digest()[:10]}")

    def entries(self) -> list[Entry]:
        if not self.root.is_dir():
            return []
        return [Entry(d) for d in sorted(self.root.iterdir()) if d.is_dir() and (d / "spec.json").is_file()]

    def candidates(self, need: Job) -> list[Entry]:
        """Entries whose job measures everything ``need`` asks for, newest first."""
        out = []
        for e in self.entries():
            if not e.dir.name.startswith(need.key.split("__round")[0]):
                continue
            job = e.job()
            if job is not None and job.kind == need.kind and job.satisfies(need):  # type: ignore[arg-type]
                out.append(e)
        return sorted(out, key=lambda e: (e.status or {}).get("finished_at", 0), reverse=True)

    def find(self, need: Job, identity: str, reuse_older: bool = False) -> Found:
        """The newest complete, successful entry that satisfies ``need`` and was
        measured by ``identity`` (any identity with ``reuse_older``)."""
        reasons = []
        for e in self.candidates(need):
            why = e.problem()
            if why:
                reasons.append(f"{e.dir.name}: incomplete, {why}")
                continue
            if not e.ok:
                reasons.append(f"{e.dir.name}: failed before ({(e.status or {}).get('root_cause')})")
                continue
            if e.identity != identity and not reuse_older:
                reasons.append(f"{e.dir.name}: measured by other code ({e.identity}; this is {identity})")
                continue
            return Found(e, reasons)
        return Found(None, reasons)

    def latest(self, need: Job) -> Entry | None:
        """The newest entry for ``need`` with a status, failed or not (what a notebook shows)."""
        return next((e for e in self.candidates(need) if e.status is not None), None)

    @contextlib.contextmanager
    def running(self, entry: Entry) -> Iterator[None]:
        """Hold the entry while its job runs: a second run of the same job waits here
        (and then finds it done); processes an earlier, killed run left behind must
        be gone first."""
        def waiting(owner: str) -> None:
            print(f"waiting for another run of {entry.dir.name} ({owner}) ...", flush=True)

        with exclusive(entry.dir / ".lock", waiting):
            _wait_for_leftovers(entry.dir, self.leftover_wait_s)
            yield

    def record(self, entry: Entry, job: Job, result: RunResult, tables: dict[str, pd.DataFrame],
               identity: dict[str, Any], timing: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
        """Write the entry's tables and environment, then its status (last), with the
        manifest of everything."""
        write_json(entry.dir / "environment.json", env)
        for name, df in tables.items():
            stem = entry.dir / "tables" / name
            if df.empty:
                stem.with_suffix(".parquet").unlink(missing_ok=True)
            else:
                write_table(df, stem, csv=False)
        status = {
            "status": "ok" if result.ok else "failed", "kind": job.kind, "key": job.key, "digest": job.digest(),
            **result.as_dict(), "identity": identity, "identity_label": identity_label(identity),
            "timing": timing, "manifest": manifest(entry.dir),
        }
        write_json(entry.dir / STATUS, status)
        return status


def _wait_for_leftovers(folder: Path, wait_s: float = 20.0) -> None:
    """An earlier run killed outright leaves ``running.json``; its processes are
    killed by their watchdog within seconds. Wait for that, else refuse."""
    path = folder / "running.json"
    try:
        info = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    deadline = time.monotonic() + wait_s
    while procs.group_alive(info["pgid"]):
        if time.monotonic() > deadline:
            pids = [p.pid for p in procs.group_members(info["pgid"])]
            raise PoolBusy(f"processes of an earlier run of {folder.name} are still alive (pids "
                           f"{', '.join(map(str, pids))}, process group {info['pgid']}); stop them first")
        time.sleep(0.5)
    path.unlink(missing_ok=True)

