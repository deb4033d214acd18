"""One folder per notebook run under ``outputs/runs/<notebook>/<profile>-<digest>/``.

The digest is of the resolved parameters: re-running a notebook with the same
parameters lands in the same folder. What the notebook measured lives in the
measurement pool (``pool``), shared by every notebook; the run folder holds a
copy of the rows of this notebook's own points, so it is complete on its own
(a reference copy, a comparison, a report read only this folder). Layout::

    params.yaml          resolved parameters (what the schema accepted)
    environment.json     GPU, driver, CUDA, torch, vLLM, Python, the code that measured the
                         folder's rows (all of them; "mixed" with each identity when
                         rows of older code were explicitly reused)
    provenance.json      which configuration was measured by which code
    executions.jsonl     one line per execution of the notebook into this folder
    configs/<key>/       per job: spec.json, status.json, its logs and small results, tables/
    tables/              consolidated tidy tables (Parquet + CSV)
    figures/             PNG and SVG
    <notebook>.ipynb     the executed notebook, <notebook>.html its rendering
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .. import paths
from ..atomic import Busy, exclusive, write_json, write_table, write_text
from ..engine.spec import EngineJob
from ..errors import SlmstudyError
from ..jobs import Job
from ..params import Resolved, show
from ..platform import MEASURED_ON_ENV
from . import environment
from .pool import Entry, Pool

TABLES = ("configs", "runs", "requests", "telemetry", "phases", "point_errors", "overhead", "harness", "frontend", "agreement",
          "bench", "bench_runs", "levels", "timing", "server_metrics", "serve_crosscheck", "gguf_files", "anatomy", "anatomy_events")
CSV_TABLES = {"configs", "runs", "phases", "point_errors", "overhead", "harness", "frontend", "bench", "bench_runs", "levels", "timing",
              "serve_crosscheck", "gguf_files", "anatomy"}
# Small files of a pool entry copied beside its tables (results a notebook shows).
COPIED_FILES = ("spec.json", "status.json", "environment.json", "engine.log", "bench.log", "server.log", "probe.log", "bench.json",
                "hardware.json", "probe.json", "server.json", "client_demo.json", "gguf.json")
# Tables whose rows belong to points: filtered to the notebook's points and renamed to its names.
POINT_TABLES = ("runs", "requests", "point_errors")


class FolderBusy(SlmstudyError):
    """Another run holds this run folder."""


def folder_for(resolved: Resolved) -> Path:
    return paths.runs_dir() / resolved.notebook / f"{resolved.profile}-{resolved.digest()}"


class RunView:
    """Read-only access to a run folder: tables, JSON results, parameters, environment."""

    def __init__(self, folder: Path):
        self.dir = Path(folder)
        self.tables_dir = self.dir / "tables"
        self.figures_dir = self.dir / "figures"
        self.configs_dir = self.dir / "configs"

    def table(self, name: str) -> pd.DataFrame:
        path = self.tables_dir / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    def read_json(self, name: str) -> Any:
        path = self.dir / name
        return json.loads(path.read_text()) if path.exists() else None

    def environment(self) -> dict[str, Any]:
        return self.read_json("environment.json") or {}

    def params_file(self) -> dict[str, Any]:
        path = self.dir / "params.yaml"
        return yaml.safe_load(path.read_text()) if path.exists() else {}

    def hardware(self) -> dict[str, Any] | None:
        """The hardware probe's result (its job's copy; folders written before the
        pool kept it at the top)."""
        found = list(self.config_files("hardware.json").values())
        return json.loads(found[0].read_text()) if found else self.read_json("hardware.json")

    def config_files(self, name: str) -> dict[str, Path]:
        """Job key -> its copy of ``name`` (e.g. ``bench.json``), for jobs that have one."""
        return {p.parent.name: p for p in sorted(self.configs_dir.glob(f"*/{name}"))}


class RunFolder(RunView):
    def __init__(self, resolved: Resolved, root: Path | None = None):
        super().__init__(Path(root) if root else folder_for(resolved))
        self.resolved = resolved

    # ---------------------------------------------------------------- records
    def initialise(self) -> None:
        """Parameters, one line in executions.jsonl, and this execution's environment
        as environment.json while the folder holds no measured rows (once it does,
        environment.json is the environment that measured them: ``consolidate``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text(self.dir / "params.yaml", yaml.safe_dump(
            {"notebook": self.resolved.notebook, "profile": self.resolved.profile,
             "sources": list(self.resolved.sources), "params": self.resolved.as_dict()}, sort_keys=False))
        env = environment.capture()
        if not list(self.configs_dir.glob("*/status.json")):
            write_json(self.dir / "environment.json", env)
        with open(self.dir / "executions.jsonl", "a") as fh:
            # where the analysis ran, which may not be where the rows were measured (--measured-on)
            fh.write(json.dumps({"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid(),
                                 "identity": env["identity"], "host": env.get("host"),
                                 "measured_on": os.environ.get(MEASURED_ON_ENV)}) + "\n")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One run at a time per folder; a lock whose owner died is taken over (the
        kernel releases a dead process's lock)."""
        try:
            with exclusive(self.dir / ".lock"):
                yield
        except Busy as exc:
            raise FolderBusy(f"{show(self.dir)} is being written by another run ({exc.owner}); wait for it "
                             "to finish or stop it, then run again") from None

    def write_json(self, name: str, data: Any) -> Path:
        return write_json(self.dir / name, data)

    # ---------------------------------------------------------------- collect
    def collect(self, jobs: list[Job], pool: Pool, identity: str, reuse_older: bool = False) -> list[str]:
        """Copy each job's latest result from the pool (rows of this notebook's
        points only, under this notebook's point names), then consolidate.
        Returns one line per job that has no result at all."""
        missing = []
        keep = set()
        for job in jobs:
            found = pool.find(job, identity, reuse_older)
            entry = found.entry or pool.latest(job)
            if entry is None:
                missing.append(f"{job.key}: not measured")
                continue
            target = self.configs_dir / job.key
            keep.add(job.key)
            _copy_entry(entry, job, target)
        for stale in (d for d in self.configs_dir.glob("*") if d.is_dir() and d.name not in keep):
            shutil.rmtree(stale)  # a job these parameters no longer ask for
        self.consolidate()
        return missing

    def consolidate(self) -> None:
        """Concatenate every job's tables into ``tables/`` and record provenance."""
        for name in TABLES:
            parts = [pd.read_parquet(p) for p in sorted(self.configs_dir.glob(f"*/tables/{name}.parquet"))]
            parts = [p for p in parts if not p.empty]
            stem = self.tables_dir / name
            if parts:
                write_table(pd.concat(parts, ignore_index=True), stem, csv=name in CSV_TABLES)
            else:
                for suffix in (".parquet", ".csv"):
                    stem.with_suffix(suffix).unlink(missing_ok=True)
        self._provenance()

    def _provenance(self) -> None:
        """provenance.json: which code measured which job; environment.json: the
        environment that measured the rows, or, when rows of several identities were
        reused together, each identity's environment under ``environments``."""
        by_identity: dict[str, list[str]] = {}
        envs: dict[str, Any] = {}
        for status in sorted(self.configs_dir.glob("*/status.json")):
            st = json.loads(status.read_text())
            label = st.get("identity_label") or "unknown"
            by_identity.setdefault(label, []).append(status.parent.name)
            env_file = status.parent / "environment.json"
            if env_file.exists():
                envs.setdefault(label, json.loads(env_file.read_text()))
        if not by_identity:
            return
        write_json(self.dir / "provenance.json", {"mixed": len(by_identity) > 1, "identities": by_identity})
        if len(by_identity) == 1 and envs:
            write_json(self.dir / "environment.json", next(iter(envs.values())))
        elif envs:
            newest = max(envs.values(), key=lambda e: e.get("captured_at", ""))
            write_json(self.dir / "environment.json", {**newest, "identity": "mixed", "mixed": True,
                                                       "identities": by_identity, "environments": envs})

    # ---------------------------------------------------------------- figures
    def save_figure(self, fig: Any, name: str) -> list[Path]:
        from ..atomic import write_with

        self.figures_dir.mkdir(parents=True, exist_ok=True)
        out = []
        for ext in ("png", "svg"):
            out.append(write_with(self.figures_dir / f"{name}.{ext}",
                                  lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight")))
        return out


def _copy_entry(entry: Entry, job: Job, target: Path) -> None:
    """A pool entry's small files and its tables, restricted to ``job``'s points."""
    if target.exists():
        shutil.rmtree(target)
    (target / "tables").mkdir(parents=True)
    for name in COPIED_FILES:
        src = entry.dir / name
        if src.is_file():
            shutil.copy2(src, target / name)
    status = entry.status or {}
    prov = {"identity": status.get("identity_label"), "git_commit": (status.get("identity") or {}).get("git_commit"),
            "git_dirty": (status.get("identity") or {}).get("git_dirty"), "measured_at": status.get("finished_at"),
            "pool_entry": entry.dir.name}
    names = _point_names(entry, job)
    for path in sorted((entry.dir / "tables").glob("*.parquet")):
        df = pd.read_parquet(path)
        name = path.stem
        if name in POINT_TABLES and names is not None:
            df = _restrict(df, names)
        elif name == "telemetry" and names is not None and "point_shape" in df:
            df = df.assign(point=df["point_shape"].map(lambda s: names.get(s, [None])[0]).fillna(df["point"]))
        if name in ("configs", "gguf_files"):  # one row per job: which code measured it
            df = df.assign(config=job.key, **prov)
        elif "config" in df:
            df = df.assign(config=job.key)
        if not df.empty:
            write_table(df, target / "tables" / name, csv=False)
    timing = status.get("timing") or {}
    write_table(pd.DataFrame([{"job": job.key, "pool_entry": entry.dir.name, "kind": job.kind,
                               "status": status.get("status"), **prov, **timing}]),
                target / "tables" / "timing", csv=False)


def _point_names(entry: Entry, job: Job) -> dict[str, list[str]] | None:
    """Shape digest -> this notebook's names for it (engine jobs only)."""
    if not isinstance(job, EngineJob):
        return None
    names: dict[str, list[str]] = {}
    for p in job.points:
        names.setdefault(p.shape_digest(), []).append(p.name)
    return names


def _restrict(df: pd.DataFrame, names: dict[str, list[str]]) -> pd.DataFrame:
    """Rows of the notebook's point shapes, once under each name it gives the shape."""
    if df.empty or "point_shape" not in df:
        return df
    parts = []
    for shape, labels in names.items():
        rows = df[df["point_shape"] == shape]
        parts += [rows.assign(point=label) for label in labels]
    return pd.concat(parts, ignore_index=True) if parts else df.iloc[0:0]
