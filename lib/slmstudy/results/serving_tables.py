"""Tidy tables of one server measurement (``serving.session``): one row per load
level (with energy and utilisation over the level, as the offline tables compute
them per repetition), per request, per telemetry sample and per phase, plus the
server's start-up read from its log."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine import journal as journal_mod
from ..engine import vllm_log
from ..stats import bootstrap_percentile_cis
from ..engine.runner import RunResult
from ..serving.spec import ServeJob
from ..telemetry.server_metrics import COUNTERS, GAUGES
from . import energy
from .energy import energy_between
from .windows import label_by_phases, load_telemetry, window_telemetry

# vLLM's log lines carry "INFO 11-22 21:27:16 [file.py:123]": month-day and time.
_STAMP = re.compile(r"(?:INFO|WARNING|DEBUG|ERROR) (\d\d-\d\d \d\d:\d\d:\d\d) \[")
# Landmarks of a server's start, in the order they appear in vLLM 0.26's log.
START_LANDMARKS = {
    "api_first_log": r"non-default args",
    "config_resolved": r"Resolved architecture",
    "engine_core_first_log": r"\(EngineCore[^)]*\) INFO .*Initializing",
    "engine_core_ready": r"init engine \(profile, create kv cache, warmup model\) took",
    "api_ready": r"Starting vLLM (?:API )?server on",
}


def start_landmarks(log: str, started_at: float | None, ready_at: float | None) -> dict[str, float]:
    """Seconds from the process start to each landmark of the server's start-up
    (whole-second resolution: vLLM logs seconds), so a slow start says where."""
    if started_at is None:
        return {}
    year = datetime.fromtimestamp(started_at).year
    out: dict[str, float] = {}
    for name, pattern in START_LANDMARKS.items():
        for line in log.splitlines():
            if re.search(pattern, line) and (m := _STAMP.search(line)):
                when = datetime.strptime(f"{year}-{m.group(1)}", "%Y-%m-%d %H:%M:%S").timestamp()
                out[f"start_{name}_s"] = round(when - started_at, 1)
                break
    if ready_at is not None:
        out["start_healthy_s"] = ready_at - started_at
    return out


def level_rows(levels: pd.DataFrame, tel: pd.DataFrame, idle_power_w: float = float("nan")) -> pd.DataFrame:
    """Energy (J, J per output token, also above idle) and mean utilisation over each level's [t0, t1]."""
    if levels.empty:
        return levels
    rows = [window_telemetry(tel, lv["t0"], lv["t1"], lv.get("output_tokens") or 0, idle_power_w)
            for _, lv in levels.iterrows()]
    return pd.concat([levels.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def _ratio(a: float, b: float) -> float:
    return a / b if b and not (math.isnan(a) or math.isnan(b)) else float("nan")


def edge_deltas(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per load level, what the server's counters rose by between the reads at the
    level's edges (``server_metrics`` records, taken with nothing in flight), and
    the figures derived from them. One row per (mode, level) read at both edges."""
    edges: dict[tuple[Any, Any], dict[str, dict[str, Any]]] = {}
    for r in records:
        if r["type"] == "server_metrics":
            edges.setdefault((r["mode"], r["level"]), {})[r["edge"]] = r
    rows = []
    for (mode, level), e in edges.items():
        if "start" not in e or "end" not in e:
            continue  # the level never ended (a crash): nothing to difference
        a, b = e["start"], e["end"]
        d = {c: (b[c] - a[c]) if c in a and c in b else float("nan") for c in COUNTERS}
        rows.append({
            "mode": mode, "level": level,
            **{f"{c}_delta": d[c] for c in ("srv_generation_tokens", "srv_prompt_tokens", "srv_requests_finished",
                                            "srv_preemptions", "srv_engine_steps", "srv_queue_time_s",
                                            "srv_inference_time_s")},
            "srv_tokens_per_step": _ratio(d["srv_step_tokens"], d["srv_engine_steps"]),
            "srv_queue_time_mean_s": _ratio(d["srv_queue_time_s"], d["srv_queued_requests"]),
            "srv_prefix_cache_hit_share": _ratio(d["srv_prefix_cache_hits"], d["srv_prefix_cache_queries"]),
            "srv_edge_window_s": b["t"] - a["t"],
        })
    return pd.DataFrame(rows)


def gauge_window(metrics: pd.DataFrame, t0: float, t1: float) -> dict[str, float]:
    """Means and maxima of the server's gauges over the scrapes inside [t0, t1]."""
    if metrics.empty or "t" not in metrics:
        return {}
    w = metrics[(metrics["t"] >= t0) & (metrics["t"] <= t1)]
    if "scrape_error" in w:
        w = w[w["scrape_error"].isna()]
    out: dict[str, float] = {"srv_scrapes": float(len(w))}
    if "scrape_s" in w and len(w):
        out["srv_scrape_p50_s"] = float(w["scrape_s"].median())
    for g in GAUGES:
        if g in w and w[g].notna().any():
            out[f"{g}_mean"] = float(w[g].mean())
            out[f"{g}_max"] = float(w[g].max())
    return out


def with_server_view(levels: pd.DataFrame, records: list[dict[str, Any]], metrics: pd.DataFrame) -> pd.DataFrame:
    """Level rows with the server's own account of each level: counter rises between
    its edges (and the step rate and mean requests running and waiting over the
    level's duration) and its gauges inside it."""
    if levels.empty:
        return levels
    deltas = edge_deltas(records)
    out = levels.merge(deltas, on=["mode", "level"], how="left") if not deltas.empty else levels.copy()
    if "srv_engine_steps_delta" in out:
        out["srv_step_rate_hz"] = out["srv_engine_steps_delta"] / out["duration_s"]
        # Little's law: every request of a level starts and ends inside it, so the
        # time its requests spent RUNNING (WAITING) over the level's duration is
        # the mean number running (waiting), exact however short the level.
        out["engine_running_avg"] = out["srv_inference_time_s_delta"] / out["duration_s"]
        out["engine_waiting_avg"] = out["srv_queue_time_s_delta"] / out["duration_s"]
    gauges = pd.DataFrame([gauge_window(metrics, r["t0"], r["t1"]) for _, r in out.iterrows()], index=out.index)
    return pd.concat([out, gauges], axis=1)


CI_METRICS = ("ttft", "e2e", "tpot", "itl")
CI_PERCENTILES = (50, 90, 99)


def counted_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """The requests a level's statistics count: completed without error, inside the
    steady-state window when the level had one."""
    if requests.empty:
        return requests
    out = requests[requests["error_type"].isna()] if "error_type" in requests else requests
    if "window_phase" in out:
        out = out[out["window_phase"].fillna("steady") == "steady"]
    return out


def with_percentile_cis(levels: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Each level's latency percentiles with a 95% bootstrap CI (``<metric>_p<q>_lo``,
    ``_hi``) from the requests its statistics count (the steady-state window's, when
    the level had one), resampling requests (``stats.bootstrap_percentile_ci``)."""
    if levels.empty or requests.empty:
        return levels
    out = levels.copy()
    counted = counted_requests(requests)
    for i, lv in out.iterrows():
        rows = counted[(counted["mode"] == lv["mode"]) & (counted["level"] == lv["level"])]
        for m in CI_METRICS:
            groups = list(rows["itl_s"]) if m == "itl" else [[v] for v in rows[f"{m}_s"]]
            for q, (lo, hi) in bootstrap_percentile_cis(groups, CI_PERCENTILES).items():
                out.loc[i, f"{m}_p{q}_lo_s"], out.loc[i, f"{m}_p{q}_hi_s"] = lo, hi
    return out


def load_metrics(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The periodic ``/metrics`` reads, and what the scraper's closing line says it
    cost (reads made, CPU seconds of its thread); no closing line after a crash."""
    rows = journal_mod.read(path)
    end = [r for r in rows if r.get("scraper_end")]
    samples = pd.DataFrame([r for r in rows if not r.get("scraper_end")])
    if not samples.empty:
        samples = samples.sort_values("t").reset_index(drop=True)
    cost = {"srv_scrapes_total": end[-1]["scrapes"], "srv_scraper_cpu_s": end[-1]["scraper_cpu_s"]} if end else {}
    return samples, cost


CROSSCHECK_COLUMNS = ["round", "tool", "mode", "level", "status", "error", "requests", "completed", "errors", "requests_in_stats",
                     "duration_s", "output_tok_s", "req_s", "output_tokens", "prompt_tokens",
                     *[f"{q}_{k}" for q in ("ttft", "itl", "tpot", "e2e") for k in ("mean_s", "p50_s", "p90_s", "p99_s")],
                     "t0", "t1", "command",
                     # each tool's own CPU over its level (ours: the client's process; another tool: its
                     # host and the processes it waited for, set-up and result writing included)
                     "client_cpu_s",
                     # how another tool's level ran: its seconds, in its host (which level of that
                     # host, the host's import before its first), processes it left behind
                     "seconds", "ran_in", "host_pid", "host_level", "host_import_s", "leftovers"]


def crosscheck_rows(path: Path) -> pd.DataFrame:
    """The serving cross-check: one row per tool, round and level (our client's
    ``level`` records and ``vllm bench serve``'s lines), with the same columns."""
    if not path.exists():
        return pd.DataFrame()
    df = pd.DataFrame([r for r in journal_mod.read(path) if r["type"] in ("level", "bench_serve")])
    return df[[c for c in CROSSCHECK_COLUMNS if c in df]] if not df.empty else df


def build(out: Path, job: ServeJob, result: RunResult) -> dict[str, pd.DataFrame]:
    records = journal_mod.read(out / "events.jsonl")
    tel = load_telemetry(out / "telemetry.jsonl")
    metrics, scraper = load_metrics(out / "metrics.jsonl")
    server = json.loads((out / "server.json").read_text()) if (out / "server.json").exists() else {}
    log = (out / "server.log").read_text(errors="replace") if (out / "server.log").exists() else ""
    e = job.engine
    label = {"config": job.key, "model": e.model, "precision": e.precision, "weights": e.weights}
    levels = pd.DataFrame([{k: v for k, v in r.items() if k not in ("type", "t")}
                           for r in records if r["type"] == "level"])
    requests = pd.DataFrame([
        {**{k: v for k, v in r.items() if k not in ("type", "t", "rows")}, **row}
        for r in records if r["type"] == "requests" for row in sorted(r["rows"], key=lambda x: x["index"])
    ])
    phases = pd.DataFrame([{k: v for k, v in r.items() if k != "type"} for r in records if r["type"] == "phase"])
    if not phases.empty:
        phases["duration_s"] = phases["t1"] - phases["t0"]
        phases["energy_j"] = [energy_between(tel, a, b) for a, b in zip(phases["t0"], phases["t1"])]
    failed = levels[levels["status"] == "failed"] if not levels.empty else levels
    status = "failed" if not result.ok else ("partial" if len(failed) else "ok")
    config: dict[str, Any] = {
        **label, "engine_digest": e.digest(), "status": status, "error": result.error,
        "root_cause": result.root_cause, "compile_cache": result.compile_cache,
        "compile_cache_hit": vllm_log.compile_cache_hit(log),
        "server_start_s": server.get("start_s"), "port": server.get("port"), "command": server.get("command"),
        "vllm_import_prefetched": server.get("vllm_import_prefetched"), "vllm_import_s": server.get("vllm_import_s"),
        "engine_core_start_method": server.get("engine_core_start_method"),
        "tokenizer": server.get("tokenizer"), "weights_source": server.get("weights_source"),
        "leftover_processes_killed": result.leftover_processes_killed, "seconds": result.seconds,
        "failed_levels": json.dumps(failed[["mode", "level", "failure"]].to_dict(orient="records"))
        if len(failed) else "[]",
        **start_landmarks(log, server.get("started_at"), server.get("ready_at")),
        **scraper,
    }
    tel = label_by_phases(tel, records, ("mode", "level"))
    metrics = label_by_phases(metrics, records, ("mode", "level"))
    facts = energy.trace_facts(tel, *energy.idle_window(records))
    config.update(facts)
    levels = with_server_view(level_rows(levels, tel, facts["idle_power_w"]), records, metrics)  # type: ignore[arg-type]
    levels = with_percentile_cis(levels, requests)
    check = crosscheck_rows(out / "crosscheck.jsonl")
    return {
        "configs": pd.DataFrame([config]),
        "serve_crosscheck": check.assign(**label) if not check.empty else check,
        "levels": levels.assign(**label) if not levels.empty else levels,
        "server_metrics": metrics.assign(**label) if not metrics.empty else metrics,
        "requests": requests.assign(**label) if not requests.empty else requests,
        "telemetry": tel.assign(**label) if not tel.empty else tel,
        "phases": phases.assign(**label) if not phases.empty else phases,
    }
