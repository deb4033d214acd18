"""Runs one engine job in its own process group, and cleans up after it.

Why a process per job: GPU memory is only truly returned when the process that
held it exits; an out-of-memory error or a crash in one configuration must
become a recorded failure, not the end of the study; and no engine process may
outlive its run (the whole group is killed, and a watchdog kills it if this
process dies first).

The runner leaves raw files only (``spec.json``, ``engine.log``,
``events.jsonl``, ``telemetry.jsonl``); tables and the status file that declares
the job complete are written afterwards by the layer above, status last.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import caches, core_watch, procs, vllm_log
from . import journal as journal_mod
from .spec import EngineJob

# GPU memory counts as returned when within this much of the level before the run
# (the driver keeps a little per-context bookkeeping for a moment after exit).
MEM_TOLERANCE_MIB = 512  # per GPU
MEM_RETURN_WAIT_S = 60
RAW_FILES = ("events.jsonl", "telemetry.jsonl", "telemetry.stderr", "engine.log", "spec.json", "running.json")


@dataclass
class RunResult:
    """How an engine (or bench, or server) process ended, and what it left behind."""

    error: str | None
    root_cause: str | None
    returncode: int | None
    leftover_processes_killed: int
    seconds: float
    started_at: float
    finished_at: float
    compile_cache: str | None = None
    gpu_mem_baseline_mib: float | None = None
    gpu_mem_after_mib: float | None = None
    gpu_mem_returned: bool | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gpu_memory_reader(gpu_index: int, count: int = 1) -> Callable[[], float] | None:
    """The memory used on the job's GPUs ``gpu_index`` to ``gpu_index + count - 1``
    (a tensor-parallel engine's), summed; None without NVML."""
    if os.environ.get("SLMSTUDY_FORCE_CPU") == "1":
        return None
    try:
        from ..telemetry.nvml_reader import MultiNvmlReader

        return MultiNvmlReader(gpu_index, count).memory_used_mib
    except Exception:
        return None


def wait_memory_returned(mem_used: Callable[[], float] | None, baseline: float | None, gpus: int = 1
                         ) -> tuple[float | None, bool | None]:
    """Memory is freed by the driver shortly after the process exits: wait for it."""
    if mem_used is None or baseline is None:
        return baseline, None
    deadline = time.monotonic() + MEM_RETURN_WAIT_S
    tolerance = MEM_TOLERANCE_MIB * gpus
    while True:
        after = mem_used()
        if after <= baseline + tolerance or time.monotonic() > deadline:
            return after, after <= baseline + tolerance
        time.sleep(0.5)


def _engine_started(out: Path) -> bool:
    return any(r["type"] == "engine" for r in journal_mod.read(out / "events.jsonl"))


def clean(out: Path) -> None:
    """A retry starts clean: a half-finished earlier attempt must not mix in."""
    out.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:
        (out / name).unlink(missing_ok=True)


def worker_error(error: str | None, returncode: int | None, fatal: str | None) -> str | None:
    """Whether a worker (of either engine) failed: what we stopped it for, else what it
    journaled as fatal, else how it exited; None when it ended well."""
    if error is None and fatal is not None:
        error = fatal
    if error is None and returncode not in (0, None):
        error = f"worker {procs.describe_exit(returncode)}"
    return error


def explain_failure(error: str | None, returncode: int | None, log: str, fatal: str | None) -> tuple[str | None, str | None]:
    """(error, root cause) of a process that ended: what we stopped it for, what the
    worker journaled, what vLLM's log says, or how the process died."""
    error = worker_error(error, returncode, fatal)
    if error is None:
        return None, None
    if error.startswith("TimeoutError"):
        return error, error
    if (gone := core_watch.cause(error, log)) is not None:
        return error, gone
    cause = vllm_log.root_cause(log)
    if cause is None and fatal is not None and not vllm_log.is_wrapper(fatal):
        cause = fatal
    if cause is None:
        # Only wrappers ("EngineCore encountered an issue. See stack trace (above)")
        # or nothing at all: a process died without an error of its own.
        died = vllm_log.died_process(log)
        how = procs.describe_exit(returncode) if returncode not in (0, None) else None
        own = fatal if fatal and not vllm_log.is_wrapper(fatal) else None  # a wrapper points at nothing
        cause = "; ".join(x for x in (died, f"worker {how}" if how else None, own) if x) or error
    return error, cause


WORKER = [sys.executable, "-m", "slmstudy.engine.worker"]


def record_group(out: Path) -> Callable[[procs.Group], None]:
    """``run_logged``'s ``on_start``: ``running.json`` names the job's process group, so
    a later run finds (and waits for) processes a killed run left; removed when the job ends."""
    def record(group: procs.Group) -> None:
        from ..atomic import write_json

        write_json(out / "running.json", {"pgid": group.pgid, "parent": os.getpid(), "started_at": time.time()})
    return record


def start_standby(cache_root: Path, log: Path) -> procs.Group:
    """A worker process for a later engine job of the model whose caches are at
    ``cache_root``: it imports vLLM now and waits for ``run_engine_job(..., standby=)``."""
    return procs.start_standby([*WORKER, "--standby"], log, env=caches.env(cache_root))


def run_engine_job(job: EngineJob, out: Path, cache_root: Path, standby: procs.Group | None = None) -> RunResult:
    """Run ``job`` in a child process writing into ``out`` (``standby``: a process
    from ``start_standby`` for the same cache root, sent the job instead of starting
    one); never raises for a failed engine."""
    clean(out)
    job.save(out / "spec.json")
    cache_state = caches.prepare(cache_root, cold=job.start == "cold")
    mem_used = gpu_memory_reader(job.engine.telemetry.gpu_index, job.engine.engine.tensor_parallel_size)
    baseline = mem_used() if mem_used else None
    start_timeout = job.engine.engine.start_timeout_s

    core = core_watch.CoreWatch(look_s=start_timeout)
    record = record_group(out)

    def engine_check(elapsed: float) -> str | None:
        if elapsed > start_timeout and not _engine_started(out):
            return f"TimeoutError: engine did not start within {start_timeout:.0f} s"
        return core(elapsed)

    def on_start(group: procs.Group) -> None:
        record(group)
        core.attach(group)

    started = time.time()
    fin = None
    try:
        fin = procs.run_logged([*WORKER, str(out / "spec.json"), str(out)],
                               out / "engine.log", job.timeout_s, env=caches.env(cache_root),
                               check=engine_check, on_start=on_start, standby=standby,
                               go=json.dumps([str(out / "spec.json"), str(out)]).encode() + b"\n")
    finally:
        (out / "running.json").unlink(missing_ok=True)
    after, returned = wait_memory_returned(mem_used, baseline, job.engine.engine.tensor_parallel_size)
    records = journal_mod.read(out / "events.jsonl")
    fatal = next((r["error"] for r in reversed(records) if r["type"] == "fatal"), None)
    log = (out / "engine.log").read_text(errors="replace") if (out / "engine.log").exists() else ""
    error, cause = explain_failure(fin.error, fin.returncode, log, fatal)
    return RunResult(error=error, root_cause=cause, returncode=fin.returncode,
                     leftover_processes_killed=fin.leftovers, seconds=fin.seconds, started_at=started,
                     finished_at=time.time(), compile_cache=cache_state, gpu_mem_baseline_mib=baseline,
                     gpu_mem_after_mib=after, gpu_mem_returned=returned)
