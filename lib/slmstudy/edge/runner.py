"""Runs one edge (llama.cpp) job in its own process group, as
``engine.runner.run_engine_job`` does for vLLM: ``spec.json``, ``engine.log``,
``events.jsonl``, ``telemetry.jsonl`` and, while it runs, ``running.json`` with
the process group; the group is killed whatever happens, and a failed
configuration becomes a ``RunResult`` with an error and a root cause, never an
exception."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from ..engine import journal as journal_mod
from ..engine import procs
from ..engine.runner import RunResult, clean, record_group, worker_error
from .spec import EdgeJob

WORKER = [sys.executable, "-m", "slmstudy.edge.worker"]
# From the end of the GGUF build (which may take minutes for a 1.5B model made on
# the spot) to llama.cpp's model being loaded: mmap of a file of at most a few GiB.
LOAD_TIMEOUT_S = 300.0

# llama.cpp's log lines: "0.00.073.152 E llama_model_load: error loading model: ...".
BINDING_WRAPPER = "RuntimeError: Failed to init server"  # xllamacpp's only message for a failed load
_LLAMA_ERROR = re.compile(r"^\s*\d+\.\d+\.\d+\.\d+ E (?:\w+\s+)?(\S.*)$")


def llama_root_cause(log: str) -> str | None:
    """llama.cpp's own first error in the log (the binding only raises "Failed to
    init server, please check the input params."); a model-loading error first."""
    errors = [m.group(1).strip() for line in log.splitlines() if (m := _LLAMA_ERROR.match(line))]
    errors = [e for e in errors if e]
    if not errors:
        return None
    loading = next((e for e in errors if "error loading model" in e), None)
    return f"llama.cpp: {loading or errors[0]}"


def explain_failure(error: str | None, returncode: int | None, log: str, fatal: str | None) -> tuple[str | None, str | None]:
    """(error, root cause): what we stopped the worker for, what it journaled, what
    llama.cpp logged, or how the process died."""
    error = worker_error(error, returncode, fatal)
    if error is None:
        return None, None
    if error.startswith("TimeoutError"):
        return error, error
    # A Python exception of our own is its own cause; the binding's wrapper (or a
    # process that died without journaling one) points at llama.cpp's log.
    own = fatal is not None and not fatal.startswith(BINDING_WRAPPER)
    cause = None if own else llama_root_cause(log)
    if cause is None and fatal is not None:
        cause = fatal
    if cause is None:
        how = procs.describe_exit(returncode) if returncode not in (0, None) else None
        cause = f"worker {how}" if how else error
    return error, cause


def env(job: EdgeJob) -> dict[str, str]:
    """The worker's environment: OpenMP's team capped at the job's threads (the
    llama.cpp build uses OpenMP), and the sampler on CPU columns only."""
    threads = str(job.engine.threads)
    return {"OMP_NUM_THREADS": threads, "SLMSTUDY_FORCE_CPU": "1"}


def _load_overdue(records: list[dict[str, Any]], now: float, limit_s: float) -> bool:
    """The GGUF file was ready ``limit_s`` ago and llama.cpp has not loaded it."""
    if any(r["type"] in ("engine", "fatal") for r in records):
        return False
    built = next((r for r in records if r["type"] == "phase" and r.get("name") == "gguf_build" and r.get("ok")), None)
    return built is not None and now - built["t1"] > limit_s


def run_edge_job(job: EdgeJob, out: Path, load_timeout_s: float = LOAD_TIMEOUT_S) -> RunResult:
    """Run ``job`` in a child process writing into ``out``; never raises for a
    failed configuration."""
    clean(out)
    job.save(out / "spec.json")
    events = out / "events.jsonl"
    last_look = [0.0]

    def load_check(elapsed: float) -> str | None:
        if time.monotonic() - last_look[0] < 1.0:  # the journal is read once a second at most
            return None
        last_look[0] = time.monotonic()
        if _load_overdue(journal_mod.read(events), time.time(), load_timeout_s):
            return f"TimeoutError: llama.cpp did not load the model within {load_timeout_s:.0f} s"
        return None

    started = time.time()
    try:
        fin = procs.run_logged([*WORKER, str(out / "spec.json"), str(out)], out / "engine.log", job.timeout_s,
                               env=env(job), check=load_check, on_start=record_group(out))
    finally:
        (out / "running.json").unlink(missing_ok=True)
    records = journal_mod.read(events)
    fatal = next((r["error"] for r in reversed(records) if r["type"] == "fatal"), None)
    log = (out / "engine.log").read_text(errors="replace") if (out / "engine.log").exists() else ""
    error, cause = explain_failure(fin.error, fin.returncode, log, fatal)
    return RunResult(error=error, root_cause=cause, returncode=fin.returncode,
                     leftover_processes_killed=fin.leftovers, seconds=fin.seconds, started_at=started,
                     finished_at=time.time())


def main(argv: list[str] | None = None) -> int:
    """``python -m slmstudy.edge.runner SPEC_JSON OUT_DIR``: run a saved job (for trying one by hand)."""
    argv = sys.argv[1:] if argv is None else argv
    job = EdgeJob.load(Path(argv[0]))
    result = run_edge_job(job, Path(argv[1]))
    print(json.dumps(result.as_dict(), indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
