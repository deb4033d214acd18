"""One execution of the study from the command line: the merged plan first (every
engine once, with the points of every notebook that asks for it), then the
notebooks with papermill (each finds its measurements done and analyses them),
the reports last; a timing table and a summary with the recorded root causes.

Notebooks run as papermill processes in process groups of their own, so an
interrupt (Ctrl-C, SIGTERM from ``timeout``) or this process's death stops them
and every engine they hold; each executed notebook is kept as
``<run folder>/<notebook>.ipynb`` (with an HTML rendering) also when it failed
or was interrupted.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import paths
from .atomic import Busy, exclusive, write_table, write_text
from .engine import procs
from .experiments import registry
from .experiments.base import MEASURE_ENV, REUSE_ENV, Study
from .jobs import Job
from .measure import executor, plan
from .params import Resolved, show
from .results import report_html
from .results.pool import Pool


@dataclass
class NotebookResult:
    notebook: str
    status: str  # "passed", "FAILED", "INTERRUPTED", "not run"
    seconds: float = 0.0
    folder: Path | None = None
    error: str | None = None
    failed_configs: list[tuple[str, str]] = field(default_factory=list)  # (job, root cause)
    total_configs: int = 0


class StudyRun:
    def __init__(self, resolved: dict[str, Resolved], profile: str, files: list[str], reuse_older: bool = False,
                 jobs: int = 0, start_budget_s: float | None = None, measure: bool = True,
                 devices: tuple[int, ...] | None = None):
        self.resolved = resolved
        self.profile = profile
        self.files = files
        self.reuse_older = reuse_older
        self.workers = jobs or min(4, os.cpu_count() or 1)
        self.pool = Pool()
        self.outcomes: list[executor.Outcome] = []
        self.results: dict[str, NotebookResult] = {nb: NotebookResult(nb, "not run") for nb in resolved}
        self.started = time.monotonic()
        self.plan_seconds = 0.0
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.start_budget_s = start_budget_s
        self.measure = measure  # False: analyse a pool measured elsewhere (--measured-on)
        self.devices = devices  # several: independent jobs at once, one per free device (measure.slots)
        self.unfinished: list[str] = []  # jobs the budget left for the next run

    # -------------------------------------------------------------- execute
    def studies(self) -> dict[str, Study[Any]]:
        return {nb: Study(registry.experiment(nb), r, pool=self.pool) for nb, r in self.resolved.items()}

    def plan(self) -> list[Job]:
        """Every notebook's jobs, merged and ordered (``measure.plan``)."""
        return plan.build(j for s in self.studies().values() for j in s.jobs())

    def execute(self) -> None:
        studies = self.studies()
        jobs = self.plan()
        if jobs:
            print(f"=== study plan: {len(jobs)} jobs for {', '.join(n for n in studies if studies[n].jobs())} ===",
                  flush=True)
            t0 = time.monotonic()
            try:
                self.outcomes = executor.execute(jobs, self.pool, self.reuse_older, start_budget_s=self.start_budget_s,
                                                 measure=self.measure, devices=self.devices)
            except executor.OutOfTime as stop:
                self.outcomes, self.unfinished = stop.done, stop.left
                self.plan_seconds = time.monotonic() - t0
                print(f"\n{stop}", flush=True)
                return  # the notebooks wait for the whole plan
            self.plan_seconds = time.monotonic() - t0
        order = [nb for nb in studies if nb not in registry.REPORTS], [nb for nb in studies if nb in registry.REPORTS]
        for batch in order:
            if not batch:
                continue
            with ThreadPoolExecutor(max_workers=min(self.workers, len(batch))) as pool:
                for result in pool.map(self._notebook, batch):
                    self.results[result.notebook] = result
                    print(f"{result.status:<11} {result.notebook} in {result.seconds:.0f} s -> {show(result.folder)}"
                          + (f": {result.error}" if result.error else ""), flush=True)

    def _notebook(self, nb: str) -> NotebookResult:
        """Execute one notebook into its run folder, unless another run is executing it
        there (its own lock: the kernel takes the folder's lock for the run step)."""
        study = Study(registry.experiment(nb), self.resolved[nb], pool=self.pool)
        try:
            with exclusive(study.dir / ".notebook.lock"):
                return self._execute(nb, study)
        except Busy as exc:
            return NotebookResult(nb, "FAILED", 0.0, study.dir,
                                  f"{show(study.dir)} is being written by another run ({exc.owner})")

    def _execute(self, nb: str, study: Study[Any]) -> NotebookResult:
        folder = study.dir
        folder.mkdir(parents=True, exist_ok=True)
        partial, final = folder / f".{nb}.partial.ipynb", folder / f"{nb}.ipynb"
        parameters = {"profile": self.profile, "params_file": self.files or None, "overrides": {}}
        cmd = [sys.executable, "-m", "papermill", str(paths.notebooks_dir() / f"{nb}.ipynb"), str(partial),
               "--cwd", str(paths.notebooks_dir()), "--no-progress-bar", "--log-level", "WARNING",
               "-y", json.dumps(parameters)]
        env = {MEASURE_ENV: "0", REUSE_ENV: "1" if self.reuse_older else "0"}
        t0 = time.monotonic()
        fin = procs.run_logged(cmd, folder / "papermill.log", timeout_s=3 * 3600, env=env)
        seconds = time.monotonic() - t0
        kept = _keep(partial, final)
        status = "passed" if fin.returncode == 0 and fin.error is None and kept is None else "FAILED"
        error = None if status == "passed" else (_cell_error(final) or kept or fin.error or _papermill_error(folder)
                                                 or procs.describe_exit(fin.returncode))
        if final.exists():
            report_html.render(final, final.with_suffix(".html"), status=status, error=error)
        result = NotebookResult(nb, status, seconds, folder, error)
        self._configs(study, result)
        _add_timing(folder, nb, status, seconds)
        return result

    def _configs(self, study: Study[Any], result: NotebookResult) -> None:
        """The notebook's configurations that failed, and those with no result at all
        (a run never passes with one silently missing)."""
        cfg = study.table("configs")
        expected = [j.key for j in study.jobs() if j.kind in ("engine", "serve")]
        have = set(cfg["config"]) if not cfg.empty and "config" in cfg else set()
        result.total_configs = len(expected)
        bad = cfg[~cfg["status"].isin(["ok"])] if have else cfg
        result.failed_configs = [(r["config"], str(r.get("root_cause") or r.get("error"))) for _, r in bad.iterrows()]
        result.failed_configs += [(key, "no result: not measured") for key in expected if key not in have]

    def interrupted(self, signum: int) -> None:
        """Stop every process of this run and keep what the notebooks had executed."""
        killed = procs.kill_live_groups()
        print(f"\ninterrupted by signal {signum}; stopped {len(killed)} process group(s) of this run", flush=True)
        for nb, r in self.results.items():
            if r.status == "not run":
                study = Study(registry.experiment(nb), self.resolved[nb], pool=self.pool)
                partial, final = study.dir / f".{nb}.partial.ipynb", study.dir / f"{nb}.ipynb"
                if partial.exists() and _keep(partial, final) is None:
                    report_html.render(final, final.with_suffix(".html"), status="INTERRUPTED",
                                       error=f"interrupted by signal {signum}")
                    self.results[nb] = NotebookResult(nb, "INTERRUPTED", 0, study.dir, f"signal {signum}")

    # -------------------------------------------------------------- results
    def failures(self) -> list[str]:
        out = [f"job {o.key}: {o.root_cause}" for o in self.outcomes if o.status == "failed"]
        out += [f"job {key}: not run yet (time budget)" for key in self.unfinished]
        out += [f"notebook {r.notebook}: {r.error}" for r in self.results.values() if r.status not in ("passed",)]
        return out

    def timing(self) -> pd.DataFrame:
        rows = [{**o.timing, "reused": o.status == "skipped"} for o in self.outcomes]
        rows += [{"job": r.notebook, "kind": "notebook", "status": r.status, "wall_s": r.seconds}
                 for r in self.results.values()]
        rows.append({"job": "study", "kind": "total", "status": "", "wall_s": time.monotonic() - self.started})
        return pd.DataFrame(rows)

    def report(self, code: int) -> None:
        total = time.monotonic() - self.started
        folder = paths.runs_dir() / "study" / f"{self.stamp}-{self.profile}"
        table = self.timing()
        write_table(table, folder / "timing")
        write_text(folder / "summary.txt", self.summary_text(code, total))
        print("\n" + self.summary_text(code, total) + f"\ntiming table: {show(folder / 'timing.csv')}", flush=True)

    def summary_text(self, code: int, total: float) -> str:
        lines = ["Summary"]
        if self.outcomes or self.unfinished:
            ran = [o for o in self.outcomes if o.status != "skipped"]
            failed = [o for o in self.outcomes if o.status == "failed"]
            lines.append(f"  plan: {len(self.outcomes)} jobs, {len(ran)} measured, {len(self.outcomes) - len(ran)} "
                         f"reused, {len(failed)} failed, {self.plan_seconds:.0f} s"
                         + (f"; {len(self.unfinished)} left for the next run (time budget)" if self.unfinished else ""))
        for r in self.results.values():
            lines.append(f"  {r.status:<11} {r.notebook:<20} {r.seconds:6.0f} s  {show(r.folder) if r.folder else ''}")
            if r.error:
                lines.append(f"        {r.error}")
            if r.failed_configs and len(r.failed_configs) == r.total_configs:
                causes = sorted({c for _, c in r.failed_configs})
                lines.append(f"        all {r.total_configs} configurations failed: {'; '.join(causes)}")
            else:
                lines += [f"        failed: {key}: {cause}" for key, cause in r.failed_configs]
        passed = sum(r.status == "passed" for r in self.results.values())
        lines.append(f"\n{passed} of {len(self.results)} notebooks passed; the study took {total:.0f} s "
                     f"({total / 60:.1f} min); exit code {code}. Results: {show(paths.runs_dir())}")
        return "\n".join(lines)


def _keep(partial: Path, final: Path) -> str | None:
    """Move papermill's output into place if it is a whole notebook; else leave the
    previous one and say why (a full disk truncates a file, it must not replace one)."""
    if not partial.exists():
        return f"papermill wrote no notebook ({partial})"
    try:
        json.loads(partial.read_text())
    except (OSError, ValueError) as exc:
        return f"the executed notebook {partial} is incomplete ({type(exc).__name__}); the previous one is kept"
    os.replace(partial, final)
    return None


def _cell_error(nb_path: Path) -> str | None:
    """The first error a cell of the executed notebook shows, as ``Name: value``."""
    try:
        nb = json.loads(nb_path.read_text())
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error":
                return f"{out.get('ename')}: {str(out.get('evalue'))[:500]}"
    return None


def _papermill_error(folder: Path) -> str | None:
    """papermill's own last error (a kernel that died leaves no cell error)."""
    from .engine.vllm_log import root_cause

    try:
        return root_cause((folder / "papermill.log").read_text(errors="replace"))
    except OSError:
        return None


def _add_timing(folder: Path, nb: str, status: str, seconds: float) -> None:
    """The notebook's own execution (analysis, figures) beside its jobs' rows."""
    path = folder / "tables" / "timing.parquet"
    df = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    if not df.empty and "kind" in df:
        df = df[df["kind"] != "notebook"]
    row = pd.DataFrame([{"job": nb, "kind": "notebook", "status": status, "wall_s": seconds}])
    write_table(pd.concat([df, row], ignore_index=True), folder / "tables" / "timing")
