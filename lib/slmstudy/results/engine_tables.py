"""Tidy tables from one engine job's raw records (journal, telemetry trace,
engine log): one row per job, per repetition, per request, per telemetry sample,
per phase; and the tables of a ``vllm bench latency`` run.

Telemetry is joined to the work by wall-clock time (``windows``): a repetition's
energy is the energy counter's rise between its start and end, its SM activity
the mean of the samples inside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import analytic, catalog
from ..engine import journal as journal_mod
from ..engine import vllm_log
from ..engine.runner import RunResult
from ..engine.spec import BenchLatencyJob, EngineJob
from . import energy
from .energy import energy_between
from .windows import label_by_phases, load_telemetry, window_telemetry

GIB = 1024**3


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def labels(job: EngineJob | BenchLatencyJob) -> dict[str, Any]:
    e = job.engine
    return {"config": job.key, "model": e.model, "precision": e.precision, "weights": e.weights}


def run_rows(job: EngineJob, records: list[dict[str, Any]], tel: pd.DataFrame,
             idle_power_w: float = float("nan")) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, requests = [], []
    for r in (x for x in records if x["type"] == "run"):
        reqs = r["requests"]
        ttft = np.array([q["ttft_s"] for q in reqs], dtype=float)
        tpot = np.array([q["tpot_s"] for q in reqs], dtype=float)
        itl = np.concatenate([np.asarray(q["itl_s"], dtype=float) for q in reqs]) if reqs else np.zeros(0)
        row = {
            **labels(job),
            "point": r["point"], "point_shape": r.get("point_shape"), "batch": r["batch"], "input_len": r["input_len"],
            "output_len": r["output_len"], "rep": r["rep"], "t0": r["t0"], "t1": r["t1"],
            "wall_s": r["wall_s"], "output_tokens": r["output_tokens"], "input_tokens": r["input_tokens"],
            "output_tok_s": r["output_tok_s"], "req_per_min": r["req_per_min"],
            "short_outputs": r["short_outputs"],
            "ttft_mean_s": float(np.nanmean(ttft)), "ttft_p50_s": _pct(ttft, 50),
            "ttft_p90_s": _pct(ttft, 90), "ttft_p99_s": _pct(ttft, 99), "ttft_max_s": float(np.nanmax(ttft)),
            "tpot_mean_s": float(np.nanmean(tpot)),
            "itl_p50_s": _pct(itl, 50), "itl_p90_s": _pct(itl, 90), "itl_p99_s": _pct(itl, 99),
            "itl_max_s": float(itl.max()) if len(itl) else float("nan"),
            **window_telemetry(tel, r["t0"], r["t1"], r["output_tokens"], idle_power_w),
        }
        runs.append(row)
        for i, q in enumerate(reqs):
            requests.append({
                **labels(job), "point": r["point"], "point_shape": r.get("point_shape"), "batch": r["batch"],
                "rep": r["rep"], "request": i,
                **{k: v for k, v in q.items() if k != "itl_s"},
                "itl_s": np.asarray(q["itl_s"], dtype=np.float32),
            })
    return pd.DataFrame(runs), pd.DataFrame(requests)


def telemetry_rows(job: EngineJob, records: list[dict[str, Any]], tel: pd.DataFrame) -> pd.DataFrame:
    """The trace, each sample labelled with the phase, point and repetition it fell in."""
    tel = label_by_phases(tel, records, ("point", "point_shape", "rep"))
    for k, v in labels(job).items():
        tel[k] = v
    return tel


def phase_rows(job: EngineJob, records: list[dict[str, Any]], tel: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for p in (x for x in records if x["type"] == "phase"):
        row = {**labels(job), **{k: v for k, v in p.items() if k not in ("type", "t")}}
        row["duration_s"] = p["t1"] - p["t0"]
        row["energy_j"] = energy_between(tel, p["t0"], p["t1"])
        rows.append(row)
    return pd.DataFrame(rows)


def config_row(job: EngineJob, records: list[dict[str, Any]], tel: pd.DataFrame, log: str,
               result: RunResult) -> dict[str, Any]:
    """Everything about one engine job: start-up, memory, analytic facts, outcome."""
    by_type: dict[str, dict[str, Any]] = {}
    for r in records:
        by_type.setdefault(r["type"], r)  # first of each type
    engine = by_type.get("engine", {})
    after = next((r for r in reversed(records) if r["type"] == "engine_after"), {})
    report = engine.get("report", {}) or {}
    report_after = after.get("report", {}) or {}
    cfg = by_type.get("config", {})
    tele = by_type.get("telemetry", {})
    spec = job.engine
    prec = catalog.precision(spec.precision)
    facts = analytic.model_facts(catalog.model(spec.model).hf_config(), prec, spec.engine.kv_cache_dtype)
    timings = vllm_log.engine_timings(log)

    def gib(v: Any) -> float:
        return v / GIB if isinstance(v, (int, float)) else float("nan")

    kv_tokens = engine.get("kv_capacity_tokens")
    # Weights: vLLM's own figure (its model-memory counter, else its log line);
    # the CPU engine reports neither, so then the parameter tensors' bytes.
    weights, weights_from = gib(report.get("weights_bytes_vllm")), "vLLM"
    if np.isnan(weights) and timings.get("weights_gib_log") is not None:
        weights, weights_from = timings["weights_gib_log"], "vLLM log"
    tensors = gib((report.get("param_bytes") or 0) + (report.get("repacked_bytes") or 0)) \
        if report.get("param_bytes") is not None else float("nan")
    if np.isnan(weights):
        weights, weights_from = tensors, "parameter tensors"
    graph_gib = timings.get("graph_gib_log")
    if graph_gib is None:
        graph_gib = gib(report.get("cudagraph_memory_estimate"))
    start_phase = next((r for r in records if r["type"] == "phase" and r["name"] == "engine_start"), None)
    baseline = result.gpu_mem_baseline_mib
    return {
        **labels(job),
        "engine_digest": spec.digest(),
        "start": job.start,
        "round": job.round,
        "compile_cache": result.compile_cache,
        "compile_cache_hit": timings.get("compile_cache_hit"),
        "model_display": catalog.model(spec.model).display,
        "precision_display": prec.display,
        "weights_source": cfg.get("source"),
        "status": "ok" if result.ok else "failed",
        "error": result.error,
        "root_cause": result.root_cause,
        "vllm_version": engine.get("vllm_version"),
        "engine_kwargs": json.dumps(cfg.get("engine_kwargs", {}), sort_keys=True, default=str),
        "telemetry_backend": tele.get("backend"),
        "telemetry_note": tele.get("fallback_reason"),
        "gpu_name": tele.get("gpu_name"),
        # how many GPUs the trace read as one engine (a tensor-parallel engine's all)
        "telemetry_gpus": tele.get("gpus", 1) if tele.get("backend") == "nvml" else None,
        "cpu_model": tele.get("cpu_model"),
        # start-up
        "engine_start_s": engine.get("start_s"),
        "vllm_import_s": engine.get("import_s"),
        "vllm_import_prefetched": engine.get("import_prefetched"),
        **timings,
        "compile_s_worker": report.get("compile_time_s"),
        "engine_start_energy_j": energy_between(tel, start_phase["t0"], start_phase["t1"]) if start_phase
        else float("nan"),
        # memory, measured
        "weights_gib": weights,
        "weights_gib_from": weights_from,
        "weights_gib_params": tensors,
        # parameters the model holds, plus linear weights the CPU backend repacked out of them
        "params_measured": (report["param_count"] + (report.get("repacked_params") or 0))
        if report.get("param_count") is not None else None,
        "params_repacked": report.get("repacked_params"),
        "param_bytes_by_dtype": json.dumps(report.get("param_bytes_by_dtype")),
        "linear_kernels": json.dumps(report.get("linear_kernels")),
        "kv_capacity_tokens": kv_tokens,
        "kv_cache_gib": gib(report.get("kv_cache_bytes")),
        "activation_peak_gib": gib(report.get("peak_activation_memory")),
        "non_torch_gib": gib(report.get("non_torch_memory")),
        "cudagraph_gib": graph_gib,
        "torch_peak_allocated_gib": gib(report_after.get("torch_allocated_peak_bytes")
                                        or report.get("torch_allocated_peak_bytes")),
        "device_total_gib": gib(report.get("device_total_bytes")),
        "gpu_mem_baseline_mib": baseline,
        "gpu_mem_after_mib": result.gpu_mem_after_mib,
        "gpu_mem_returned": result.gpu_mem_returned,
        "leftover_processes_killed": result.leftover_processes_killed,
        "peak_device_mem_gib": (tel["mem_used_mib"].max() - baseline) / 1024
        if "mem_used_mib" in tel and baseline is not None else float("nan"),
        "peak_proc_mem_gib": tel["proc_mem_mib"].max() / 1024 if "proc_mem_mib" in tel else float("nan"),
        "peak_proc_rss_gib": tel["proc_rss_mib"].max() / 1024 if "proc_rss_mib" in tel else float("nan"),
        # memory, analytic
        "params_analytic": facts.params,
        "weights_gib_analytic": facts.weights_gib,
        "kv_bytes_per_token": facts.kv_bytes_per_token,
        "kv_capacity_gib_analytic": kv_tokens * facts.kv_bytes_per_token / GIB if kv_tokens else float("nan"),
        "flops_per_token": facts.flops_per_token,
        "attn_flops_per_token_per_ctx": facts.attn_flops_per_token_per_ctx,
        "seconds": result.seconds,
    }


def anatomy_rows(job: EngineJob, records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``anatomy``: one row per profiled window (its step starts as JSON);
    ``anatomy_events``: one row per device event in a window (kernel or op name,
    start and duration in microseconds from the window's start, step index)."""
    windows, events = [], []
    for r in records:
        if r["type"] != "anatomy":
            continue
        ev = r.get("events") or {}
        windows.append({**labels(job), **{k: v for k, v in r.items() if k not in ("type", "events", "step_starts_us")},
                        "step_starts_us": json.dumps(r.get("step_starts_us")), "events": len(ev.get("name", []))})
        if ev:
            df = pd.DataFrame(ev)
            for k, v in {**labels(job), "batch": r["batch"]}.items():
                df[k] = v
            events.append(df)
    return pd.DataFrame(windows), (pd.concat(events, ignore_index=True) if events else pd.DataFrame())


def _journaled(job: EngineJob, records: list[dict[str, Any]], kind: str, drop: tuple[str, ...] = ("type",),
               need: str | None = None) -> pd.DataFrame:
    """One row per journal record of ``kind`` (that has ``need``), labelled with the job."""
    return pd.DataFrame([{**labels(job), **{k: v for k, v in r.items() if k not in drop}}
                         for r in records if r["type"] == kind and (need is None or need in r)])


def build(out: Path, job: EngineJob, result: RunResult) -> dict[str, pd.DataFrame]:
    """All tables of one engine job's folder."""
    records = journal_mod.read(out / "events.jsonl")
    tel = load_telemetry(out / "telemetry.jsonl")
    log = (out / "engine.log").read_text(errors="replace") if (out / "engine.log").exists() else ""
    facts = energy.trace_facts(tel, *energy.idle_window(records))
    runs, requests = run_rows(job, records, tel, facts["idle_power_w"])  # type: ignore[arg-type]
    point_errors = _journaled(job, records, "point_error", drop=("type", "traceback"))
    overhead = _journaled(job, records, "overhead", need="telemetry")
    agreement = _journaled(job, records, "agreement", drop=("type", "t"))
    harness = _journaled(job, records, "harness", need="mode")
    frontend = _journaled(job, records, "frontend", need="mode")
    windows, events = anatomy_rows(job, records)
    return {
        "configs": pd.DataFrame([{**config_row(job, records, tel, log, result), **facts}]),
        "anatomy": windows,
        "anatomy_events": events,
        "agreement": agreement,
        "runs": runs,
        "requests": requests,
        "telemetry": telemetry_rows(job, records, tel),
        "phases": phase_rows(job, records, tel),
        "point_errors": point_errors,
        "overhead": overhead,
        "harness": harness,
        "frontend": frontend,
    }


def build_bench(out: Path, job: BenchLatencyJob, result: RunResult) -> dict[str, pd.DataFrame]:
    """``bench``: one row for the bench-latency run (vLLM's numbers and the
    telemetry over its measured window); ``bench_runs``: one row per iteration."""
    data = json.loads((out / "bench.json").read_text()) if (out / "bench.json").exists() else {}
    point = job.point
    latencies = data.get("latencies_s") or []
    row: dict[str, Any] = {
        **labels(job), "tool": job.tool, "round": job.round, "batch": point.batch, "input_len": point.input_len,
        "output_len": point.output_len, "point_shape": point.shape_digest(), "iters": job.iters,
        "warmup": job.warmup, "status": "ok" if result.ok else "failed", "root_cause": result.root_cause,
        "command": data.get("command"), "seconds": result.seconds, "finished_at": result.finished_at,
        "avg_latency_s": data.get("avg_latency_s"),
        "window_t0": data.get("window_t0"), "window_t1": data.get("window_t1"),
        "vllm_import_prefetched": data.get("vllm_import_prefetched"), "vllm_import_s": data.get("vllm_import_s"),
        "engine_core_start_method": data.get("engine_core_start_method"),
    }
    if data.get("window_t0") is not None and data.get("telemetry"):
        tel = load_telemetry(out / "telemetry.jsonl")
        tokens = len(latencies) * point.batch * point.output_len
        idle = (data["idle_t0"], data["idle_t1"]) if data.get("idle_t0") is not None else None
        facts = energy.trace_facts(tel, idle, data.get("idle_state"))
        row.update(window_telemetry(tel, data["window_t0"], data["window_t1"], tokens,
                                    facts["idle_power_w"]))  # type: ignore[arg-type]
        row.update(facts)
    runs = pd.DataFrame([{**labels(job), "tool": job.tool, "round": job.round, "batch": point.batch, "iter": i,
                          "latency_s": lat,
                          "output_tok_s": point.batch * point.output_len / lat}
                         for i, lat in enumerate(latencies)])
    return {"bench": pd.DataFrame([row]), "bench_runs": runs}
