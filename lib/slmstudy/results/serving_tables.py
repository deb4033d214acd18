"""Tidy tables of one server measurement (``serving.session``): one row per load
level (with energy and utilisation over the level, as the offline tables compute
them per repetition), per request, per telemetry sample and per phase, plus the
server's start-up read from its log."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine import journal as journal_mod
from ..engine.runner import RunResult
from ..serving.spec import ServeJob
from .windows import energy_between, label_by_phases, load_telemetry, window_telemetry

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


def level_rows(levels: pd.DataFrame, tel: pd.DataFrame) -> pd.DataFrame:
    """Energy (J, J per output token) and mean utilisation over each level's [t0, t1]."""
    if levels.empty:
        return levels
    rows = [window_telemetry(tel, lv["t0"], lv["t1"], lv.get("output_tokens") or 0) for _, lv in levels.iterrows()]
    return pd.concat([levels.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def build(out: Path, job: ServeJob, result: RunResult) -> dict[str, pd.DataFrame]:
    records = journal_mod.read(out / "events.jsonl")
    tel = load_telemetry(out / "telemetry.jsonl")
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
        "server_start_s": server.get("start_s"), "port": server.get("port"), "command": server.get("command"),
        "tokenizer": server.get("tokenizer"), "weights_source": server.get("weights_source"),
        "leftover_processes_killed": result.leftover_processes_killed, "seconds": result.seconds,
        "failed_levels": json.dumps(failed[["mode", "level", "failure"]].to_dict(orient="records"))
        if len(failed) else "[]",
        **start_landmarks(log, server.get("started_at"), server.get("ready_at")),
    }
    tel = label_by_phases(tel, records, ("mode", "level"))
    return {
        "configs": pd.DataFrame([config]),
        "levels": level_rows(levels, tel).assign(**label) if not levels.empty else levels,
        "requests": requests.assign(**label) if not requests.empty else requests,
        "telemetry": tel.assign(**label) if not tel.empty else tel,
        "phases": phases.assign(**label) if not phases.empty else phases,
    }
