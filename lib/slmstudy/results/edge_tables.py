"""Tidy tables from one llama.cpp job's raw records (``edge.worker``'s journal and
telemetry trace) and from one GGUF file job (``gguf.json``).

An edge job's tables use the names the vLLM engine's use (``configs``, ``runs``,
``telemetry``, ``phases``, ``point_errors``), so run folders, provenance and the
notebooks' helpers treat both engines alike; the columns say what llama.cpp
measured (its own prompt and generation timings beside the stream's).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..edge.spec import EdgeJob, GgufFileJob
from ..engine import journal as journal_mod
from ..engine.runner import RunResult
from .windows import label_by_phases, load_telemetry, window_stats

MIB = 2**20


def labels(job: EdgeJob) -> dict[str, Any]:
    e = job.engine
    return {"config": job.key, "model": e.model, "precision": e.precision, "file_type": e.file_type,
            "threads": e.threads, "weights": "dummy"}


def gen_tok_s(timings: dict[str, Any]) -> float:
    """Generation speed from llama.cpp's own timings, first token excluded: its time
    is counted in ``prompt_ms`` while ``predicted_n`` still counts it, so llama.cpp's
    ``predicted_per_second`` is n/(n-1) too high (1.6% at 64 tokens)."""
    n, ms = timings.get("predicted_n"), timings.get("predicted_ms")
    return (n - 1) / (ms / 1000) if n and n > 1 and ms else float("nan")


def run_row(job: EdgeJob, r: dict[str, Any], tel: pd.DataFrame, cores: int | None) -> dict[str, Any]:
    """One measured request: the stream's times, llama.cpp's own phase timings, and
    the telemetry over [submit, last token], including how much CPU other processes
    took meanwhile (a 2-thread run on 2 cores halves when anything else runs)."""
    times = np.asarray(r.get("token_times") or [], dtype=float)
    gaps = np.diff(times)
    timings = r.get("timings") or {}
    t0, t1 = r["t_submit"], r.get("t_last_token") or r.get("t_done")
    wall = (t1 - t0) if t1 else float("nan")
    n = int(r.get("n_token_times") or 0)
    row = {
        **labels(job), "rep": r["rep"], "ok": r.get("ok", True), "input_len": r["input_len"],
        "output_len": r["output_len"], "t0": t0, "t1": t1, "wall_s": wall,
        "ttft_s": r.get("ttft_s"), "tpot_mean_s": r.get("tpot_s"),
        # article 001's measure: the generated tokens over the whole request
        "output_tok_s": n / wall if wall and n else float("nan"),
        "output_tokens": n, "input_tokens": r.get("n_prompt_tokens"),
        "prompt_tok_s": timings.get("prompt_per_second"), "gen_tok_s": gen_tok_s(timings),
        "llama_predicted_per_second": timings.get("predicted_per_second"),
        "prompt_ms": timings.get("prompt_ms"), "predicted_ms": timings.get("predicted_ms"),
        "itl_p50_s": float(np.percentile(gaps, 50)) if len(gaps) else float("nan"),
        "itl_p99_s": float(np.percentile(gaps, 99)) if len(gaps) else float("nan"),
        "rss_peak_mib": (r.get("rss_peak_bytes") or float("nan")) / MIB,
        "rss_peak_scope": r.get("rss_peak_scope"),
        "rss_anon_mib": (r.get("rss_anon_after_bytes") or float("nan")) / MIB,
        "rss_file_mib": (r.get("rss_file_after_bytes") or float("nan")) / MIB,
    }
    stats = window_stats(tel, t0, t1) if t1 else {}
    row.update(stats)
    if cores and "cpu_pct_mean" in stats and "proc_cpu_pct_mean" in stats:
        # machine CPU % is of all cores, the process tree's of one core
        row["other_cpu_cores_mean"] = stats["cpu_pct_mean"] / 100 * cores - stats["proc_cpu_pct_mean"] / 100
    return row


def config_row(job: EdgeJob, records: list[dict[str, Any]], result: RunResult) -> dict[str, Any]:
    cfg = next((r for r in records if r["type"] == "config"), {})
    eng = next((r for r in records if r["type"] == "engine"), {})
    gguf = cfg.get("gguf") or {}
    build = next((r for r in records if r["type"] == "phase" and r["name"] == "gguf_build"), {})
    return {
        **labels(job), "status": "ok" if result.ok else "failed", "error": result.error,
        "root_cause": result.root_cause, "seconds": result.seconds, "finished_at": result.finished_at,
        "engine": eng.get("backend"), "engine_version": eng.get("xllamacpp_version"),
        "file_size_bytes": gguf.get("size_bytes"), "bits_per_weight": gguf.get("bits_per_weight"),
        "n_params": gguf.get("n_params"), "bytes_read_per_token": gguf.get("bytes_read_per_token"),
        "gguf_build_s": build.get("seconds"),
        "vllm_import_s": None, "import_s": eng.get("import_s"), "engine_start_s": eng.get("load_s"),
        "llama_threads": (eng.get("llama_log") or {}).get("threadpool_n_threads"),
        "cpu_count": eng.get("cpu_count"), "system_info": eng.get("system_info"),
        "rss_after_load_mib": (eng.get("rss_after_load_bytes") or float("nan")) / MIB,
        "rss_peak_load_mib": (eng.get("rss_peak_load_bytes") or float("nan")) / MIB,
        "rss_anon_after_load_mib": (eng.get("rss_anon_after_load_bytes") or float("nan")) / MIB,
    }


def build(out: Path, job: EdgeJob, result: RunResult) -> dict[str, pd.DataFrame]:
    """All tables of one llama.cpp job's folder."""
    records = journal_mod.read(out / "events.jsonl")
    tel = load_telemetry(out / "telemetry.jsonl")
    cores = next((r.get("cpu_count") for r in records if r["type"] == "engine"), None)
    runs = [run_row(job, r, tel, cores) for r in records if r["type"] == "run" and not r.get("warmup")]
    errors = [{**labels(job), **{k: v for k, v in r.items() if k not in ("type", "traceback")}}
              for r in records if r["type"] == "point_error"]
    phases = [{**labels(job), **{k: v for k, v in p.items() if k not in ("type", "t")}, "duration_s": p["t1"] - p["t0"]}
              for p in records if p["type"] == "phase"]
    trace = label_by_phases(tel, records, ("rep", "warmup"))
    for k, v in labels(job).items():
        if not trace.empty:
            trace[k] = v
    good = pd.DataFrame(runs)
    if not good.empty:
        good = good[good["ok"]].drop(columns="ok")
    return {"configs": pd.DataFrame([config_row(job, records, result)]), "runs": good,
            "telemetry": trace, "phases": pd.DataFrame(phases), "point_errors": pd.DataFrame(errors)}


def build_file(out: Path, job: GgufFileJob, result: RunResult) -> dict[str, pd.DataFrame]:
    """``gguf_files``: one row per measured file (its tensor census as JSON text)."""
    path = out / "gguf.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    row = {"model": job.model, "file_type": job.file_type, "precision": job.precision,
           "status": "ok" if result.ok else "failed", "root_cause": result.root_cause, **data}
    if isinstance(row.get("tensor_types"), dict):
        row["tensor_types"] = json.dumps(row["tensor_types"], sort_keys=True)
    return {"gguf_files": pd.DataFrame([row])}
