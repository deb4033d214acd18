"""Tidy tables from one configuration's raw records (journal, telemetry trace,
engine log): one row per configuration, per repetition, per request, per
telemetry sample, per phase.

Telemetry is joined to the work by wall-clock time: a repetition's energy is the
energy counter's rise between its start and end, its SM activity the mean of the
samples inside it.
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
from ..engine.spec import ConfigSpec

GIB = 1024**3

# Telemetry columns averaged over each repetition (when the backend has them).
MEAN_COLUMNS = [
    "power_w", "util_gpu_pct", "sm_clock_mhz", "temp_c",
    "gpm_sm_active_pct", "gpm_sm_occupancy_pct", "gpm_tensor_active_pct",
    "gpm_hmma_tensor_pct", "gpm_imma_tensor_pct", "gpm_dram_bw_pct",
    "gpm_fp32_pct", "gpm_fp16_pct", "cpu_pct", "cpu_steal_pct", "proc_cpu_pct",
]
MAX_COLUMNS = ["mem_used_mib", "proc_mem_mib", "proc_rss_mib"]


def load_telemetry(path: Path) -> pd.DataFrame:
    records = journal_mod.read(path)
    df = pd.DataFrame.from_records(records)
    if not df.empty:
        df = df.sort_values("t").reset_index(drop=True)
    return df


def energy_between(tel: pd.DataFrame, t0: float, t1: float) -> float:
    """Joules used by the GPU in [t0, t1]: the total-energy counter's rise,
    interpolated at both ends; without the counter, the integral of power."""
    if tel.empty:
        return float("nan")
    if "energy_mj" in tel and tel["energy_mj"].notna().sum() >= 2:
        s = tel.dropna(subset=["energy_mj"])
        if s["t"].iloc[0] > t0 or s["t"].iloc[-1] < t1:
            return float("nan")  # the trace does not cover the interval
        e = np.interp([t0, t1], s["t"], s["energy_mj"])
        return float(e[1] - e[0]) / 1000.0
    if "power_w" in tel and tel["power_w"].notna().sum() >= 2:
        s = tel.dropna(subset=["power_w"])
        if s["t"].iloc[0] > t0 or s["t"].iloc[-1] < t1:
            return float("nan")
        grid = np.linspace(t0, t1, 64)
        return float(np.trapezoid(np.interp(grid, s["t"], s["power_w"]), grid))
    return float("nan")


def window_stats(tel: pd.DataFrame, t0: float, t1: float) -> dict[str, float]:
    out: dict[str, float] = {}
    if tel.empty:
        return out
    w = tel[(tel["t"] >= t0) & (tel["t"] <= t1)]
    out["telemetry_samples"] = len(w)
    for col in MEAN_COLUMNS:
        if col in w and w[col].notna().any():
            out[f"{col}_mean"] = float(w[col].mean())
    for col in MAX_COLUMNS:
        if col in w and w[col].notna().any():
            out[f"{col}_max"] = float(w[col].max())
    return out


def window_telemetry(tel: pd.DataFrame, t0: float, t1: float, output_tokens: int) -> dict[str, float]:
    """Energy (J, J per output token; NaN without an energy counter or power) and
    the telemetry means and maxima over [t0, t1]: what a run, a load level or a
    bench-latency window reports beside its speed."""
    energy = energy_between(tel, t0, t1)
    return {"energy_j": energy,
            "j_per_output_token": energy / output_tokens if output_tokens else float("nan"),
            **window_stats(tel, t0, t1)}


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _labels(spec: ConfigSpec) -> dict[str, Any]:
    return {"config": spec.key, "model": spec.model, "precision": spec.precision,
            "weights": spec.weights, **spec.labels}


def run_rows(spec: ConfigSpec, records: list[dict[str, Any]], tel: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, requests = [], []
    for r in (x for x in records if x["type"] == "run"):
        reqs = r["requests"]
        ttft = np.array([q["ttft_s"] for q in reqs], dtype=float)
        tpot = np.array([q["tpot_s"] for q in reqs], dtype=float)
        itl = np.concatenate([np.asarray(q["itl_s"], dtype=float) for q in reqs]) if reqs else np.zeros(0)
        row = {
            **_labels(spec),
            "point": r["point"], "batch": r["batch"], "input_len": r["input_len"],
            "output_len": r["output_len"], "rep": r["rep"], "t0": r["t0"], "t1": r["t1"],
            "wall_s": r["wall_s"], "output_tokens": r["output_tokens"], "input_tokens": r["input_tokens"],
            "output_tok_s": r["output_tok_s"], "req_per_min": r["req_per_min"],
            "short_outputs": r["short_outputs"],
            "ttft_mean_s": float(np.nanmean(ttft)), "ttft_p50_s": _pct(ttft, 50),
            "ttft_p90_s": _pct(ttft, 90), "ttft_p99_s": _pct(ttft, 99), "ttft_max_s": float(np.nanmax(ttft)),
            "tpot_mean_s": float(np.nanmean(tpot)),
            "itl_p50_s": _pct(itl, 50), "itl_p90_s": _pct(itl, 90), "itl_p99_s": _pct(itl, 99),
            "itl_max_s": float(itl.max()) if len(itl) else float("nan"),
            **window_telemetry(tel, r["t0"], r["t1"], r["output_tokens"]),
        }
        runs.append(row)
        for i, q in enumerate(reqs):
            requests.append({
                **_labels(spec), "point": r["point"], "batch": r["batch"], "rep": r["rep"], "request": i,
                **{k: v for k, v in q.items() if k != "itl_s"},
                "itl_s": np.asarray(q["itl_s"], dtype=np.float32),
            })
    return pd.DataFrame(runs), pd.DataFrame(requests)


def label_by_phases(tel: pd.DataFrame, records: list[dict[str, Any]], fields: tuple[str, ...]) -> pd.DataFrame:
    """The trace with the ``phase`` each sample fell in and that phase's ``fields``
    (e.g. point and repetition, or load mode and level); "idle" outside phases."""
    if tel.empty:
        return tel
    tel = tel.copy()
    tel["phase"] = "idle"
    for f in fields:
        tel[f] = None
    for p in (x for x in records if x["type"] == "phase"):
        inside = (tel["t"] >= p["t0"]) & (tel["t"] <= p["t1"])
        tel.loc[inside, "phase"] = p["name"]
        for f in fields:
            if f in p:
                tel.loc[inside, f] = p[f]
    return tel


def telemetry_rows(spec: ConfigSpec, records: list[dict[str, Any]], tel: pd.DataFrame) -> pd.DataFrame:
    """The trace, each sample labelled with the phase, point and repetition it fell in."""
    tel = label_by_phases(tel, records, ("point", "rep"))
    for k, v in _labels(spec).items():
        tel[k] = v
    return tel


def phase_rows(spec: ConfigSpec, records: list[dict[str, Any]], tel: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for p in (x for x in records if x["type"] == "phase"):
        row = {**_labels(spec), **{k: v for k, v in p.items() if k not in ("type", "t")}}
        row["duration_s"] = p["t1"] - p["t0"]
        row["energy_j"] = energy_between(tel, p["t0"], p["t1"])
        rows.append(row)
    return pd.DataFrame(rows)


def config_row(spec: ConfigSpec, records: list[dict[str, Any]], tel: pd.DataFrame, log: str,
               status: dict[str, Any]) -> dict[str, Any]:
    """Everything about one engine configuration: start-up, memory, analytic facts, outcome."""
    by_type: dict[str, dict[str, Any]] = {}
    for r in records:
        by_type.setdefault(r["type"], r)  # first of each type
    engine = by_type.get("engine", {})
    after = next((r for r in reversed(records) if r["type"] == "engine_after"), {})
    report = engine.get("report", {}) or {}
    report_after = after.get("report", {}) or {}
    cfg = by_type.get("config", {})
    tele = by_type.get("telemetry", {})
    prec = catalog.precision(spec.precision)
    facts = analytic.model_facts(catalog.model(spec.model).hf_config(), prec, spec.engine.get("kv_cache_dtype", "auto"))
    timings = vllm_log.engine_timings(log)

    def gib(v: Any) -> float:
        return v / GIB if isinstance(v, (int, float)) else float("nan")

    kv_tokens = engine.get("kv_capacity_tokens")
    weights_vllm = gib(report.get("weights_bytes_vllm"))
    if np.isnan(weights_vllm) and timings.get("weights_gib_log") is not None:
        weights_vllm = timings["weights_gib_log"]
    graph_gib = timings.get("graph_gib_log")
    if graph_gib is None:
        graph_gib = gib(report.get("cudagraph_memory_estimate"))
    start_phase = next((r for r in records if r["type"] == "phase" and r["name"] == "engine_start"), None)
    row = {
        **_labels(spec),
        "model_display": catalog.model(spec.model).display,
        "precision_display": prec.display,
        "weights_source": cfg.get("source"),
        "status": status.get("status"),
        "error": status.get("error"),
        "root_cause": status.get("root_cause"),
        "vllm_version": engine.get("vllm_version"),
        "engine_kwargs": json.dumps(cfg.get("engine_kwargs", {}), sort_keys=True, default=str),
        "telemetry_backend": tele.get("backend"),
        "telemetry_note": tele.get("fallback_reason"),
        "gpu_name": tele.get("gpu_name"),
        "cpu_model": tele.get("cpu_model"),
        # start-up
        "engine_start_s": engine.get("start_s"),
        "vllm_import_s": engine.get("import_s"),
        **{k: v for k, v in timings.items()},
        "compile_s_worker": report.get("compile_time_s"),
        "engine_start_energy_j": energy_between(tel, start_phase["t0"], start_phase["t1"]) if start_phase else float("nan"),
        # memory, measured
        "weights_gib": weights_vllm,
        "weights_gib_params": gib(report.get("param_bytes")),
        "params_measured": report.get("param_count"),
        "param_bytes_by_dtype": json.dumps(report.get("param_bytes_by_dtype")),
        "linear_kernels": json.dumps(report.get("linear_kernels")),
        "kv_capacity_tokens": kv_tokens,
        "kv_cache_gib": gib(report.get("kv_cache_bytes")),
        "activation_peak_gib": gib(report.get("peak_activation_memory")),
        "non_torch_gib": gib(report.get("non_torch_memory")),
        "cudagraph_gib": graph_gib,
        "torch_peak_allocated_gib": gib(report_after.get("torch_allocated_peak_bytes") or report.get("torch_allocated_peak_bytes")),
        "device_total_gib": gib(report.get("device_total_bytes")),
        "gpu_mem_baseline_mib": status.get("gpu_mem_baseline_mib"),
        "gpu_mem_after_mib": status.get("gpu_mem_after_mib"),
        "gpu_mem_returned": status.get("gpu_mem_returned"),
        "peak_device_mem_gib": (tel["mem_used_mib"].max() - (status.get("gpu_mem_baseline_mib") or 0)) / 1024
        if "mem_used_mib" in tel and status.get("gpu_mem_baseline_mib") is not None else float("nan"),
        "peak_proc_mem_gib": tel["proc_mem_mib"].max() / 1024 if "proc_mem_mib" in tel else float("nan"),
        "peak_proc_rss_gib": tel["proc_rss_mib"].max() / 1024 if "proc_rss_mib" in tel else float("nan"),
        # memory, analytic
        "params_analytic": facts.params,
        "weights_gib_analytic": facts.weights_gib,
        "kv_bytes_per_token": facts.kv_bytes_per_token,
        "kv_capacity_gib_analytic": kv_tokens * facts.kv_bytes_per_token / GIB if kv_tokens else float("nan"),
        "flops_per_token": facts.flops_per_token,
        "attn_flops_per_token_per_ctx": facts.attn_flops_per_token_per_ctx,
        "seconds": status.get("seconds"),
    }
    return row


def build(cdir: Path, spec: ConfigSpec, status: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """All tables of one configuration folder."""
    records = journal_mod.read(cdir / "events.jsonl")
    tel = load_telemetry(cdir / "telemetry.jsonl")
    log = (cdir / "engine.log").read_text(errors="replace") if (cdir / "engine.log").exists() else ""
    runs, requests = run_rows(spec, records, tel)
    point_errors = pd.DataFrame(
        [{**_labels(spec), **{k: v for k, v in r.items() if k not in ("type", "traceback")}}
         for r in records if r["type"] == "point_error"]
    )
    overhead = pd.DataFrame(
        [{**_labels(spec), **{k: v for k, v in r.items() if k != "type"}}
         for r in records if r["type"] == "overhead" and "telemetry" in r]
    )
    agreement = pd.DataFrame(
        [{**_labels(spec), **{k: v for k, v in r.items() if k not in ("type", "t")}}
         for r in records if r["type"] == "agreement"]
    )
    return {
        "configs": pd.DataFrame([config_row(spec, records, tel, log, status)]),
        "agreement": agreement,
        "runs": runs,
        "requests": requests,
        "telemetry": telemetry_rows(spec, records, tel),
        "phases": phase_rows(spec, records, tel),
        "point_errors": point_errors,
        "overhead": overhead,
    }
