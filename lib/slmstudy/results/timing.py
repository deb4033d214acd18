"""Where a study's wall time goes: one row per job, split into launching the
process, importing vLLM (or llama.cpp's binding), starting the engine (weight loading, torch.compile,
CUDA graphs as vLLM logs them), measuring, shutting down and waiting for the
device memory to come back. Computed from a job's journal and result, so it is
recorded with the job and read back by every notebook that used it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..engine import journal as journal_mod
from ..engine import vllm_log
from ..engine.runner import RunResult

# the front-end A/B's second engine (its start and shutdown) is part of that check's measuring
MEASURE_PHASES = ("warmup", "run", "overhead", "harness", "frontend_start", "frontend", "frontend_shutdown", "agreement",
                  "anatomy", "load", "bench_serve", "guidellm")
COLUMNS = ["job", "kind", "model", "precision", "status", "wall_s", "launch_s", "import_s", "engine_start_s",
           "weights_load_s", "compile_s", "graph_capture_s", "measure_s", "shutdown_s", "teardown_s",
           # the next job's vLLM import beside this job, and how long it was held (measure.beside)
           "beside_import_s", "beside_import_held_s"]


def _phase_sum(records: list[dict[str, Any]], names: tuple[str, ...]) -> float:
    return sum(r["t1"] - r["t0"] for r in records if r["type"] == "phase" and r["name"] in names)


def of_job(kind: str, out: Path, result: RunResult) -> dict[str, Any]:
    """The split of one job's wall time (seconds); parts a kind lacks are left out."""
    wall = result.finished_at - result.started_at
    t: dict[str, Any] = {"wall_s": wall}
    if kind == "engine":
        records = journal_mod.read(out / "events.jsonl")
        log = (out / "engine.log").read_text(errors="replace") if (out / "engine.log").exists() else ""
        engine = next((r for r in records if r["type"] == "engine"), {})
        first = next((r["t"] for r in records), None)
        last = max((r.get("t1", r["t"]) for r in records), default=None)
        timings = vllm_log.engine_timings(log)
        t.update(
            launch_s=(first - result.started_at) if first else None,
            # inside this job's wall only: a standby imported vLLM beside the job before
            import_s=0.0 if engine.get("import_prefetched") else engine.get("import_s"),
            engine_start_s=engine.get("start_s"),
            weights_load_s=timings.get("weights_load_s"),
            compile_s=timings.get("compile_s"),
            graph_capture_s=timings.get("graph_capture_s"),
            measure_s=_phase_sum(records, MEASURE_PHASES),
            shutdown_s=_phase_sum(records, ("shutdown",)),
            teardown_s=(result.finished_at - last) if last else None,
        )
    elif kind == "edge":
        records = journal_mod.read(out / "events.jsonl")
        engine = next((r for r in records if r["type"] == "engine"), {})
        first = next((r["t"] for r in records), None)
        t.update(launch_s=(first - result.started_at) if first else None, import_s=engine.get("import_s"),
                 engine_start_s=engine.get("load_s"), measure_s=_phase_sum(records, ("run",)),
                 shutdown_s=_phase_sum(records, ("shutdown",)))
    elif kind == "serve":
        records = journal_mod.read(out / "events.jsonl")
        server = json.loads((out / "server.json").read_text()) if (out / "server.json").exists() else {}
        log = (out / "server.log").read_text(errors="replace") if (out / "server.log").exists() else ""
        timings = vllm_log.engine_timings(log)  # the engine core logs as the offline engine does
        t.update(import_s=0.0 if server.get("vllm_import_prefetched") else None,
                 engine_start_s=server.get("start_s"), weights_load_s=timings.get("weights_load_s"),
                 compile_s=timings.get("compile_s"), graph_capture_s=timings.get("graph_capture_s"),
                 measure_s=_phase_sum(records, MEASURE_PHASES))
    elif kind == "bench_latency" and (out / "bench.json").exists():
        bench = json.loads((out / "bench.json").read_text())
        log = (out / "bench.log").read_text(errors="replace") if (out / "bench.log").exists() else ""
        timings = vllm_log.engine_timings(log)  # vLLM's offline engine logs its start as ours does
        window = bench["window_t1"] - bench["window_t0"] if "window_t0" in bench else None  # latency only
        t.update(import_s=0.0 if bench.get("vllm_import_prefetched") else None,
                 weights_load_s=timings.get("weights_load_s"), compile_s=timings.get("compile_s"),
                 graph_capture_s=timings.get("graph_capture_s"), measure_s=window)
    return t


def row(job_key: str, kind: str, labels: dict[str, Any], status: str, timing: dict[str, Any]) -> dict[str, Any]:
    out = {"job": job_key, "kind": kind, "model": labels.get("model"), "precision": labels.get("precision"),
           "status": status}
    out.update({c: timing.get(c) for c in COLUMNS if c.endswith("_s")})
    out["slot"] = timing.get("slot")  # the devices it ran on when the study used several at once
    return out
