"""Runs a plan: each job the pool does not hold complete, in order, each in its own
process group; tables and then the status (last) recorded with the job.

A job that fails is recorded with its root cause and the plan goes on. Nothing
here raises for a failed measurement; it raises only for what must stop a study
(a pool entry still held by processes of a killed earlier run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_json, write_text
from ..devices import slot_env, slot_label
from ..edge.runner import run_edge_job
from ..edge.spec import EdgeJob, GgufFileJob
from ..engine import bench_latency, procs
from ..engine.runner import RunResult, clean, run_engine_job, start_standby
from ..engine.spec import BenchLatencyJob, EngineJob
from ..errors import SlmstudyError
from ..jobs import HardwareProbeJob, Job, OverheadProbeJob, dump
from ..platform import detect
from ..results import edge_tables, engine_tables, serving_tables, timing
from ..results.environment import capture, identity, identity_label
from ..results.pool import Entry, Pool
from ..serving import server, session, tokenizer
from ..serving.spec import ServeJob
from . import beside, slots

Progress = Callable[[str], None]


@dataclass
class Outcome:
    key: str
    kind: str
    status: str  # "ok", "failed" or "skipped" (complete in the pool)
    root_cause: str | None
    seconds: float
    entry: Path
    reasons: list[str] = field(default_factory=list)  # why an existing entry was not used
    timing: dict[str, Any] = field(default_factory=dict)


def _labels(job: Job) -> dict[str, Any]:
    what = getattr(job, "engine", job)  # a GGUF file job names its model and precision itself
    return {"model": what.model, "precision": what.precision} if hasattr(what, "precision") else {}


def _probe(cmd: list[str], out: Path, result_file: str, timeout_s: float) -> RunResult:
    clean(out)
    started = time.time()
    fin = procs.run_logged(cmd, out / "probe.log", timeout_s)
    log = (out / "probe.log").read_text(errors="replace")
    error = fin.error or (None if fin.returncode == 0 and (out / result_file).exists()
                          else f"probe {procs.describe_exit(fin.returncode)}: {log.strip()[-300:]}")
    return RunResult(error=error, root_cause=error, returncode=fin.returncode,
                     leftover_processes_killed=fin.leftovers, seconds=fin.seconds, started_at=started,
                     finished_at=time.time())


def run_job(job: Job, out: Path, pool: Pool, standby: procs.Group | None = None
            ) -> tuple[RunResult, dict[str, pd.DataFrame]]:
    """Measure one job into ``out``; its raw files and tables (``standby``: a worker
    that already imported vLLM, for an engine, bench or serve job)."""
    if isinstance(job, EngineJob):
        result = run_engine_job(job, out, pool.cache_root(job.engine.model), standby)
        return result, engine_tables.build(out, job, result)
    if isinstance(job, BenchLatencyJob):
        tok = None
        if job.tool == "throughput":  # its random prompts are decoded text: dummy weights need our tokenizer
            e = job.engine
            tok = tokenizer.prepare(e.model, e.precision, e.weights, e.weights_path).tokenizer_path
        result = bench_latency.run(job, out, pool.cache_root(job.engine.model), tok, standby)
        return result, engine_tables.build_bench(out, job, result)
    if isinstance(job, ServeJob):
        result = session.run(job, out, pool.cache_root(job.engine.model), standby)
        return result, serving_tables.build(out, job, result)
    if isinstance(job, HardwareProbeJob):
        return _probe([sys.executable, "-m", "slmstudy.hardware", str(out / "hardware.json")], out,
                      "hardware.json", 900), {}
    if isinstance(job, EdgeJob):
        result = run_edge_job(job, out)
        return result, edge_tables.build(out, job, result)
    if isinstance(job, GgufFileJob):
        result = _probe([sys.executable, "-m", "slmstudy.gguf_files", str(out / "gguf.json"), "--model", job.model,
                         "--file-type", job.file_type, "--seed", str(job.seed)], out, "gguf.json", job.timeout_s)
        return result, edge_tables.build_file(out, job, result)
    if isinstance(job, OverheadProbeJob):
        return _probe([sys.executable, "-m", "slmstudy.telemetry.overhead_probe", str(out / "probe.json"),
                       "--interval-ms", str(job.interval_ms), "--pairs", str(job.pairs)], out, "probe.json", 900), {}
    raise TypeError(f"unknown job kind {type(job).__name__}")


# What one job leaves in the pool at most (a GPU engine's 20 Hz trace and journal of
# several minutes is a few MB; the margin covers notebooks and reports).
BYTES_PER_JOB = 50 << 20


class NoSpace(SlmstudyError):
    """Too little free space to record what a plan would measure."""


def check_free_space(folder: Path, jobs: int) -> None:
    """Refuse before any engine starts when the pool's disk cannot hold the plan."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    need = (jobs + 2) * BYTES_PER_JOB
    if free < need:
        raise NoSpace(f"{folder}: {free >> 20} MB free, the plan's {jobs} jobs need about {need >> 20} MB; "
                      "free some space (or set SLMSTUDY_RUNS_DIR elsewhere) and run again")


class OutOfTime(SlmstudyError):
    """The plan stopped before a job because its time budget was spent (resumable)."""

    def __init__(self, done: list[Outcome], left: list[str]):
        self.done, self.left = done, left
        super().__init__(f"stopped with {len(left)} job(s) left (time budget spent): {', '.join(left)}; "
                         "run the same command again to resume")


class TooFewDevices(SlmstudyError):
    """A job needs more devices than the study was given (``--devices``)."""


class NotMeasured(SlmstudyError):
    """Asked to measure nothing (``--measured-on``), and the pool lacks jobs of the plan."""


class Standbys:
    """Worker processes importing vLLM for the next engine job while the current job
    runs (``engine.worker --standby``), and server or ``vllm bench`` processes for the
    next server or bench job (``engine.vllm_cli --standby server|bench``): a tenth of
    the GPU study was imports, a quarter of a bench latency process.

    One is started only beside a job that starts an engine or a server (never
    beside a machine probe, which must have the host to itself), and only for a
    next job that will run; it imports while the current engine starts, then waits
    blocked, with no CPU, while the current job measures. Its own import time is
    recorded with its job (``vllm_import_s``, ``vllm_import_prefetched``)."""

    def __init__(self, pool: Pool, enabled: bool):
        self.pool, self.enabled = pool, enabled
        self.groups: dict[int, procs.Group] = {}

    def prestart(self, index: int, job: Job, current: Job | None = None, out: Path | None = None
                 ) -> beside.ImportGuard | None:
        """Start job ``index``'s standby beside ``current`` (measuring into ``out``); the
        guard that holds its import out of ``current``'s measurement (``measure.beside``)."""
        if not self.enabled or index in self.groups:
            return None
        log = self.pool.root / ".standby" / f"{job.key}.log"
        if isinstance(job, EngineJob):
            self.groups[index] = start_standby(self.pool.cache_root(job.engine.model), log)
        elif isinstance(job, ServeJob):
            self.groups[index] = server.start_standby(session.env(job, self.pool.cache_root(job.engine.model)), log)
        elif isinstance(job, BenchLatencyJob):
            self.groups[index] = bench_latency.start_standby(job, self.pool.cache_root(job.engine.model), log)
        else:
            return None
        ready = beside.ready_signal(current, out) if current is not None and out is not None else None
        return beside.ImportGuard(self.groups[index], ready) if ready is not None else None

    def take(self, index: int) -> procs.Group | None:
        return self.groups.pop(index, None)

    def close(self) -> None:
        """Send every unused standby away: stdin closed without a job, then its group reaped."""
        for group in self.groups.values():
            with contextlib.suppress(OSError):
                if group.proc.stdin:
                    group.proc.stdin.close()
            group.reap(grace_s=5)
        self.groups.clear()


PREFETCH_ENV = "SLMSTUDY_PREFETCH"


def prefetching() -> bool:
    """Whether standbys import vLLM beside the jobs: ``SLMSTUDY_PREFETCH`` on or off,
    else (auto) on a CUDA machine, where an import is 13-26 s; on the CPU engine an
    import beside a job shares the few cores it measures on."""
    value = os.environ.get(PREFETCH_ENV, "auto").strip().lower()
    if value not in ("on", "off", "auto"):
        raise SlmstudyError(f"{PREFETCH_ENV}={value!r}: one of on, off, auto")
    return value == "on" or (value == "auto" and detect().engine_kind == "cuda")


def execute(jobs: list[Job], pool: Pool, reuse_older: bool = False, progress: Progress = print,
            start_budget_s: float | None = None, measure: bool = True, prefetch: bool | None = None,
            devices: Sequence[int] | None = None) -> list[Outcome]:
    """Run every job of ``jobs`` (a plan) that the pool does not hold complete;
    with ``measure`` False, refuse (naming them all) before anything runs.

    A job whose results cannot be written (a full or read-only disk) stops the
    plan with one line naming the path; its entry has no status, so the next run
    measures it again.

    ``prefetch`` (default: ``prefetching()``) starts the next engine job's worker
    beside the current job (``Standbys``). ``devices`` (GPU indices, or CPU cores on
    the CPU engine), when more than one: independent jobs run at once, each in a slot
    of its own (``measure.slots``)."""
    if devices is not None and len(devices) > 1 and measure:
        return _execute_slots(jobs, pool, reuse_older, progress, start_budget_s, tuple(devices))
    standbys = Standbys(pool, prefetching() if prefetch is None else prefetch)
    try:
        return _execute(jobs, pool, reuse_older, progress, start_budget_s, measure, standbys)
    finally:
        standbys.close()


def _execute(jobs: list[Job], pool: Pool, reuse_older: bool, progress: Progress, start_budget_s: float | None,
             measure: bool, standbys: Standbys) -> list[Outcome]:
    ident = identity()
    label = identity_label(ident)
    todo = [j for j in jobs if pool.find(j, label, reuse_older).entry is None]
    if todo and not measure:
        older = "" if reuse_older else " (measured by other code? add --reuse-older)"
        raise NotMeasured(f"{pool.root}: {len(todo)} job(s) of the plan not in the pool{older}: "
                          f"{', '.join(j.key for j in todo)}; this run measures nothing")
    if todo:
        check_free_space(pool.root, len(todo))
    env: dict[str, Any] = {}
    outcomes: list[Outcome] = []
    started = time.monotonic()
    waiting = {id(j) for j in todo}

    def spent() -> bool:
        return start_budget_s is not None and time.monotonic() - started > start_budget_s

    for i, job in enumerate(jobs, 1):
        head = f"[{i}/{len(jobs)}] {job.key}"
        found = pool.find(job, label, reuse_older)
        if found.entry is None and spent():
            # A lent machine's call has a hard limit: stop between jobs, not in one.
            raise OutOfTime(outcomes, [j.key for j in jobs[i - 1:] if pool.find(j, label, reuse_older).entry is None])
        if found.entry is not None:
            progress(f"{head}: measured before ({found.entry.identity}), reused")
            outcomes.append(_outcome(job, found.entry, "skipped", found.reasons))
            continue
        entry = pool.entry(job)
        with pool.running(entry):
            again = pool.find(job, label, reuse_older)  # another run may have measured it while we waited
            if again.entry is not None:
                progress(f"{head}: measured by another run meanwhile, reused")
                outcomes.append(_outcome(job, again.entry, "skipped", again.reasons))
                continue
            for reason in found.reasons:
                progress(f"{head}: not reusing {reason}")
            progress(f"{head}: running ...")
            t0 = time.monotonic()
            guard = None
            if isinstance(job, (EngineJob, BenchLatencyJob, ServeJob)) and i < len(jobs):
                nxt = jobs[i]  # the next job, if it will run: its worker imports vLLM beside this one
                if id(nxt) in waiting and not spent():
                    guard = standbys.prestart(i, nxt, job, entry.dir)
            try:
                result, tables = run_job(job, entry.dir, pool, standbys.take(i - 1))
            finally:
                # nothing imported beside a job that had no standby beside it
                held = guard.finish() if guard is not None else {"beside_import_s": 0.0, "beside_import_held_s": 0.0}
            try:
                write_text(entry.dir / "spec.json", dump(job) + "\n")  # what was asked, for every kind
                env = env or capture()  # once per plan: it probes torch in a subprocess
                split = {**timing.of_job(job.kind, entry.dir, result), **held, "slot": slot_label()}
                status = pool.record(entry, job, result, tables, ident, split, env)
            except OSError as exc:
                raise NoSpace(f"cannot record {job.key}: {exc.strerror or exc} ({exc.filename or entry.dir}); "
                              "nothing of it counts as done, the next run measures it again") from None
        secs = time.monotonic() - t0
        if status["status"] == "ok":
            progress(f"{head}: ok in {secs:.0f} s")
        else:
            progress(f"{head}: FAILED after {secs:.0f} s: {status['root_cause']}")
        outcomes.append(_outcome(job, entry, status["status"], found.reasons, secs))
    return outcomes


def _outcome(job: Job, entry: Entry, status: str, reasons: list[str], seconds: float = 0.0) -> Outcome:
    st = entry.status or {}
    return Outcome(job.key, job.kind, status, st.get("root_cause"), seconds, entry.dir, reasons,
                   timing.row(job.key, job.kind, _labels(job), st.get("status", status), st.get("timing") or {}))


def timing_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """One row per job of a plan run: how long it took (skipped jobs: when first measured)."""
    return pd.DataFrame([{**o.timing, "reused": o.status == "skipped"} for o in outcomes])


# ----------------------------------------------------------------- several devices
@dataclass
class _Slot:
    unit: slots.Unit
    devices: tuple[int, ...]
    group: procs.Group
    outcomes: Path
    log: Path


def _execute_slots(jobs: list[Job], pool: Pool, reuse_older: bool, progress: Progress,
                   start_budget_s: float | None, devices: tuple[int, ...]) -> list[Outcome]:
    """The plan's units (``slots.units``) at once where ``slots.startable`` allows,
    each in a slot runner process (``measure.slot_runner``) holding its devices: on a
    GPU host, the GPUs it may see; on the CPU engine, cores. The runner records its
    jobs in the pool as a serial study does; a runner that dies is recorded as the
    failure of each of its jobs it left without a status."""
    kind = detect().engine_kind
    label = identity_label(identity())
    done: dict[str, Outcome] = {}
    waiting = []
    for unit in slots.units(jobs):
        found = [pool.find(j, label, reuse_older) for j in unit.jobs]
        for job, f in zip(unit.jobs, found):
            if f.entry is not None:
                progress(f"{job.key}: measured before ({f.entry.identity}), reused")
                done[job.key] = _outcome(job, f.entry, "skipped", f.reasons)
        if any(f.entry is None for f in found):
            waiting.append(unit)
    too_big = [u for u in waiting if u.devices > len(devices)]
    if too_big:
        raise TooFewDevices(f"{len(devices)} device(s) given ({', '.join(map(str, devices))}); "
                            + "; ".join(f"{u.name} needs {u.devices} (tensor_parallel_size)" for u in too_big)
                            + ": give it more with --devices, or run one job at a time (--devices 1)")
    if waiting:
        check_free_space(pool.root, sum(len(u.jobs) for u in waiting))
    run_dir = pool.root / ".slots"
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    running: list[_Slot] = []
    free = list(devices)
    progress(f"=== {len(waiting)} unit(s) over {len(devices)} {'GPUs' if kind == 'cuda' else 'cores'} "
             f"({', '.join(map(str, devices))}) ===")
    try:
        while waiting or running:
            if start_budget_s is None or time.monotonic() - started <= start_budget_s:
                for unit, devs in slots.startable(waiting, [r.unit for r in running], free):
                    waiting.remove(unit)
                    free = [d for d in free if d not in devs]
                    running.append(_start_unit(unit, devs, kind, pool, reuse_older, run_dir))
                    progress(f"[{_where(kind, devs)}] {unit.name}: running ...")
            elif not running:
                break
            for r in [r for r in running if r.group.proc.poll() is not None]:
                running.remove(r)
                r.group.reap()
                free = sorted([*free, *r.devices])
                for o in _unit_outcomes(r, pool, kind):
                    done[o.key] = o
                    tail = f"ok in {o.seconds:.0f} s" if o.status == "ok" else f"FAILED: {o.root_cause}"
                    progress(f"[{_where(kind, r.devices)}] {o.key}: {tail}")
            time.sleep(0.2)
    finally:
        for r in running:  # interrupted: no runner outlives the study
            r.group.reap(grace_s=5)
    outcomes = [done[j.key] for j in jobs if j.key in done]
    if waiting:
        raise OutOfTime(outcomes, [j.key for u in waiting for j in u.jobs if j.key not in done])
    return outcomes


def _where(kind: str, devs: tuple[int, ...]) -> str:
    return "host" if not devs else ("GPU " if kind == "cuda" else "core ") + ",".join(map(str, devs))


def _start_unit(unit: slots.Unit, devs: tuple[int, ...], kind: str, pool: Pool, reuse_older: bool,
                run_dir: Path) -> _Slot:
    stem = run_dir / f"{unit.index:03d}-{unit.jobs[0].key}"
    outcomes = stem.with_suffix(".outcomes.json")
    outcomes.unlink(missing_ok=True)
    spec = {"jobs": [j.model_dump(mode="json") for j in unit.jobs], "pool": str(pool.root),
            "reuse_older": reuse_older, "outcomes": str(outcomes),
            "cores": list(devs) if kind == "cpu" and devs else None}
    write_json(stem.with_suffix(".unit.json"), spec)
    env = slot_env(kind, devs) if devs else {}
    log = stem.with_suffix(".log")
    group = procs.start_group([sys.executable, "-m", "slmstudy.measure.slot_runner", str(stem.with_suffix(".unit.json"))],
                              log, env)
    return _Slot(unit, devs, group, outcomes, log)


def _unit_outcomes(r: _Slot, pool: Pool, kind: str) -> list[Outcome]:
    """What the runner recorded (each job's slot with it); for a runner that died
    first, each job it left without a status fails with the runner's end as its cause."""
    got = {}
    if r.outcomes.exists():
        for d in json.loads(r.outcomes.read_text()):
            got[d["key"]] = Outcome(**{**d, "entry": Path(d["entry"])})
    out = []
    for job in r.unit.jobs:
        if job.key in got:
            out.append(got[job.key])
            continue
        entry = pool.entry(job)
        cause = (f"slot runner {procs.describe_exit(r.group.proc.returncode)} before recording {job.key} "
                 f"(its log: {r.log})")
        if entry.status is not None and entry.status.get("status") in ("ok", "failed"):
            out.append(_outcome(job, entry, entry.status["status"], []))
        else:
            out.append(Outcome(job.key, job.kind, "failed", cause, 0.0, entry.dir,
                               timing={"slot": f"{kind}:{','.join(map(str, r.devices))}"}))
    return out
