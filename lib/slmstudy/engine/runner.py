"""Runs each engine configuration in its own process group, and cleans up after it.

Why a process per configuration: GPU memory is only truly returned when the
process that held it exits; an out-of-memory error or a crash in one
configuration must become a recorded failure, not the end of the sweep; and no
engine process may outlive its run (the whole process group is killed).

A configuration whose ``status.json`` says ``ok`` for the same spec digest is
skipped; a failed one is retried from scratch.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_json
from . import journal as journal_mod
from . import procs
from . import vllm_log
from .spec import ConfigSpec

# GPU memory counts as returned when within this much of the level before the run
# (the driver keeps a little per-context bookkeeping for a moment after exit).
MEM_TOLERANCE_MIB = 512
RAW_FILES = ("events.jsonl", "telemetry.jsonl", "telemetry.stderr", "engine.log", "status.json", "spec.json")


@dataclass
class Outcome:
    key: str
    status: str  # "ok", "failed" or "skipped" (done in an earlier run)
    error: str | None
    root_cause: str | None
    seconds: float


def _gpu_memory_reader(gpu_index: int) -> Callable[[], float] | None:
    if os.environ.get("SLMSTUDY_FORCE_CPU") == "1":
        return None
    try:
        from ..telemetry.nvml_reader import NvmlReader

        return NvmlReader(gpu_index).memory_used_mib
    except Exception:
        return None


def _engine_started(cdir: Path) -> bool:
    return any(r["type"] == "engine" for r in journal_mod.read(cdir / "events.jsonl"))


def read_status(cdir: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads((cdir / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def is_done(spec: ConfigSpec, cdir: Path) -> bool:
    """Finished without error, for exactly this spec, in an earlier run."""
    done = read_status(cdir)
    return bool(done and done.get("status") == "ok" and done.get("spec_digest") == spec.digest())


def run_config(spec: ConfigSpec, cdir: Path, on_table: Callable[[Path, ConfigSpec, dict[str, Any]], None] | None = None) -> Outcome:
    """Run one configuration in a child process; always leaves a ``status.json``."""
    if is_done(spec, cdir):
        return Outcome(spec.key, "skipped", None, None, 0.0)
    # A retry starts clean: a half-finished earlier attempt must not mix in.
    for name in RAW_FILES:
        (cdir / name).unlink(missing_ok=True)
    shutil.rmtree(cdir / "tables", ignore_errors=True)
    cdir.mkdir(parents=True, exist_ok=True)
    spec.save(cdir / "spec.json")

    def expand(value: str) -> str:
        return value.replace("{configs_dir}", str(cdir.parent))

    for folder in spec.clean_dirs:
        shutil.rmtree(expand(folder), ignore_errors=True)
    env = {k: expand(v) for k, v in spec.env.items()}

    mem_used = _gpu_memory_reader(spec.telemetry.get("gpu_index", 0))
    baseline = mem_used() if mem_used else None
    start_timeout = float(spec.engine.get("start_timeout_s", 900))

    def engine_start_check(elapsed: float) -> str | None:
        if elapsed > start_timeout and not _engine_started(cdir):
            return f"TimeoutError: engine did not start within {start_timeout:.0f} s"
        return None

    fin = None
    try:
        fin = procs.run_logged(
            [sys.executable, "-m", "slmstudy.engine.worker", str(cdir / "spec.json"), str(cdir)],
            cdir / "engine.log", spec.timeout_s, env=env, check=engine_start_check,
        )
    finally:
        # Also on KeyboardInterrupt: record what happened, then let it propagate.
        if fin is None:
            fin = procs.Finished(-int(signal.SIGINT), "KeyboardInterrupt: interrupted by the user", 0, 0.0)
        status = _finish(spec, cdir, fin, baseline, mem_used)
        if on_table:
            on_table(cdir, spec, status)
    return Outcome(spec.key, status["status"], status["error"], status["root_cause"], fin.seconds)


def _finish(spec: ConfigSpec, cdir: Path, fin: procs.Finished, baseline: float | None,
            mem_used: Callable[[], float] | None) -> dict[str, Any]:
    error, returncode = fin.error, fin.returncode
    after = baseline
    returned = None
    if mem_used is not None and baseline is not None:
        # Memory is freed by the driver shortly after the process exits.
        deadline = time.monotonic() + 60
        while True:
            after = mem_used()
            returned = after <= baseline + MEM_TOLERANCE_MIB
            if returned or time.monotonic() > deadline:
                break
            time.sleep(1)
    records = journal_mod.read(cdir / "events.jsonl")
    fatal = next((r for r in reversed(records) if r["type"] == "fatal"), None)
    log = (cdir / "engine.log").read_text(errors="replace")
    if error is None and fatal is not None:
        error = fatal["error"]
    if error is None and returncode != 0:
        error = f"worker exited with code {returncode}" + (
            f" (signal {signal.Signals(-returncode).name})" if returncode < 0 else ""
        )
    root = vllm_log.root_cause(log) if error else None
    if error and error.startswith("TimeoutError"):
        root = error
    status = {
        "status": "ok" if error is None else "failed",
        "error": error,
        "root_cause": root or error,
        "returncode": returncode,
        "leftover_processes_killed": fin.leftovers,
        "seconds": fin.seconds,
        "spec_digest": spec.digest(),
        "gpu_mem_baseline_mib": baseline,
        "gpu_mem_after_mib": after,
        "gpu_mem_returned": returned,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(cdir / "status.json", status)
    return status


def run_all(specs: Iterable[ConfigSpec], configs_dir: Path,
            on_table: Callable[[Path, ConfigSpec, dict[str, Any]], None] | None = None,
            progress: Callable[[ConfigSpec, Outcome | None], None] | None = None,
            before: Callable[[ConfigSpec], None] | None = None) -> list[Outcome]:
    """Run every configuration in turn; ``before`` runs just ahead of each one
    that is not already done (e.g. a reference tool that must see the same
    machine state as the configuration's first measurements)."""
    outcomes = []
    for spec in specs:
        if not is_done(spec, configs_dir / spec.key):
            if progress:
                progress(spec, None)
            if before:
                before(spec)
        outcome = run_config(spec, configs_dir / spec.key, on_table)
        outcomes.append(outcome)
        if progress:
            progress(spec, outcome)
    return outcomes
