"""The table of our measurements the claims are judged against, built from the
study notebooks' run folders: one row per (metric, model, precision) with the
mean, its 95% CI, the unit and the run it came from.

Nothing here knows the study's workloads: which measured point answers a claim
about "a single request" or "a batch of 4" is named in the report's parameters
(``roles``), and batch sizes and lengths are read from each source run's own
parameters.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .. import analytic, catalog, stats
from ..results.run_folder import RunView
from ..results.summaries import start_memory_gib, weights_gib
from .serving import in_flight

# metric id -> (role of the point that measures it, runs column, unit)
POINT_METRICS = {
    "ttft_b1_s": ("single_request", "ttft_mean_s", "s"),
    "output_tok_s_b1": ("single_request", "output_tok_s", "tok/s"),
    "tpot_b1_s": ("single_request", "tpot_mean_s", "s"),
    "j_per_output_token_b1": ("single_request", "j_per_output_token", "J"),
    "gpm_sm_active_pct_b1": ("single_request", "gpm_sm_active_pct_mean", "%"),
    "output_tok_s_b4": ("batch4", "output_tok_s", "tok/s"),
    "req_per_min_b4": ("batch4", "req_per_min", "req/min"),
    "time_100in_512out_s": ("speed_test", "wall_s", "s"),
    "tok_s_100in_512out": ("speed_test", "output_tok_s", "tok/s"),
}


def row(metric: str, model: str | None, precision: str | None, values: Any, unit: str, source: str) -> dict[str, Any]:
    if isinstance(values, (int, float)):
        values = [values]
    mean, lo, hi, n = stats.mean_ci(list(values))
    return {"metric": metric, "model": model, "precision": precision, "value": mean, "lo": lo, "hi": hi,
            "n": n, "unit": unit, "source": source}


def point_shape(view: RunView, point: str) -> dict[str, int] | None:
    """Batch and lengths of a named point, from the run's own parameters (01's
    ``points`` list, or a ``workload`` whose points are named ``b<batch>``)."""
    p = (view.params_file() or {}).get("params", {})
    for q in p.get("points", []) or []:
        if q.get("name") == point:
            return {"batch": q["batch"], "input_len": q["input_len"], "output_len": q["output_len"]}
    w = p.get("workload")
    if w and point.startswith("b") and point[1:].isdigit() and int(point[1:]) in w.get("batch_sizes", []):
        return {"batch": int(point[1:]), "input_len": w["input_len"], "output_len": w["output_len"]}
    return None


def engine_metrics(cfg: pd.DataFrame, source: str, workload_tokens: int | None) -> list[dict[str, Any]]:
    """Start times, memory and KV figures per engine (memory from the measured,
    not the cold-started, engine)."""
    rows = []
    for _, r in cfg[cfg["status"] == "ok"].iterrows():
        m, p = r["model"], r["precision"]
        cold = r.get("start") == "cold"
        rows.append(row("engine_start_cold_s" if cold else "engine_start_warm_s", m, p, r["engine_start_s"], "s",
                        source))
        if cold:
            continue
        facts = analytic.model_facts(catalog.model(m).hf_config(), catalog.precision(p))
        start_mem = start_memory_gib(r)
        rows += [row("weights_gib", m, p, weights_gib(r), "GiB", source),
                 row("start_memory_gib", m, p, start_mem, "GiB", source),
                 row("kv_bytes_per_token", m, p, facts.kv_bytes_per_token, "bytes", source)]
        if workload_tokens:
            rows.append(row("workload_memory_gib", m, p,
                            start_mem + workload_tokens * facts.kv_bytes_per_token / 2**30, "GiB", source))
        if pd.notna(r.get("peak_device_mem_gib")):
            rows.append(row("peak_memory_gib", m, p, r["peak_device_mem_gib"], "GiB", source))
        if r.get("kv_capacity_tokens"):
            rows.append(row("kv_capacity_tokens", m, p, r["kv_capacity_tokens"], "tokens", source))
    return rows


def point_metrics(runs: pd.DataFrame, source: str, roles: dict[str, str]) -> list[dict[str, Any]]:
    """``roles`` maps a role (single_request, batch4, speed_test) to this run's point name."""
    rows = []
    for metric, (role, column, unit) in POINT_METRICS.items():
        point = roles.get(role)
        if point is None or column not in runs:
            continue
        for (m, p), g in runs[runs["point"] == point].groupby(["model", "precision"]):
            rows.append(row(metric, m, p, g[column].dropna(), unit, source))
    return rows


def architecture_metrics(cfg: pd.DataFrame, models: list[str], source: str) -> list[dict[str, Any]]:
    """Tensor parallelism from the architecture (a size t works when it divides the
    heads and the MLP width, and the KV heads divide by t or are replicated);
    paged attention from the engine's block-structured KV cache."""
    out = []
    for m in models:
        arch = analytic.Architecture.from_config(catalog.model(m).hf_config())
        tp = any(arch.heads % t == 0 and arch.intermediate % t == 0 and (arch.kv_heads % t == 0 or t % arch.kv_heads == 0)
                 for t in (2, 4, 8))
        ok = cfg[(cfg["model"] == m) & (cfg["status"] == "ok")]
        paged = bool(len(ok) and (ok["kv_capacity_tokens"].fillna(0) > 0).any())
        out += [row("tensor_parallel_supported", m, None, float(tp), "yes=1", source),
                row("paged_attention_supported", m, None, float(paged), "yes=1", source)]
    return out


def serving_metrics(view: RunView, slo: float, level: int) -> list[dict[str, Any]]:
    """From the closed-loop levels: the largest number of requests in flight whose
    mean TTFT meets the objective, and TTFT / end-to-end latency at ``level`` users."""
    levels = view.table("levels")
    src = f"04_serving ({view.dir.name})"
    rows: list[dict[str, Any]] = []
    if levels.empty:
        return rows
    closed = levels[levels["mode"] == "concurrency"]
    closed = closed.assign(in_flight=in_flight(closed))
    for (m, p), g in closed.groupby(["model", "precision"]):
        ok = g[(g["status"] != "failed") & (g["ttft_mean_s"] <= slo)]
        rows.append(row("serving_max_concurrency_meeting_ttft_slo", m, p,
                        float(ok["in_flight"].max()) if len(ok) else 0.0, "concurrent requests", src))
        at = g[g["level"] == level]
        if len(at):
            rows.append(row("serving_mean_ttft_s_c16", m, p, float(at["ttft_mean_s"].iloc[0]), "s", src))
            rows.append(row("serving_mean_e2e_s_c16", m, p, float(at["e2e_mean_s"].iloc[0]), "s", src))
    return rows


def gguf_metrics(files: pd.DataFrame, source: str) -> list[dict[str, Any]]:
    """The size on disk of each model's Q4_K_M file (06_edge's ``gguf_files``)."""
    if files.empty:
        return []
    q4 = files[files["file_type"] == "Q4_K_M"].drop_duplicates("model")
    return [row("gguf_q4_k_m_file_gb", r["model"], None, r["size_bytes"] / 1e9, "GB", source) for _, r in q4.iterrows()]


def batch4_over_batch1(df: pd.DataFrame) -> pd.DataFrame:
    """How much a batch of 4 multiplies a single request's speed, per model and precision.
    The interval is conservative: the extremes of the two intervals' quotient."""
    rows = []
    b1 = df[df["metric"] == "output_tok_s_b1"].drop_duplicates(["model", "precision"])
    b4 = df[df["metric"] == "output_tok_s_b4"].drop_duplicates(["model", "precision"])
    for _, one in b1.iterrows():
        four = b4[(b4["model"] == one["model"]) & (b4["precision"] == one["precision"])]
        if four.empty:
            continue
        f = four.iloc[0]
        rows.append({"metric": "output_tok_s_b4_over_b1", "model": one["model"], "precision": one["precision"],
                     "value": f["value"] / one["value"], "lo": f["lo"] / one["hi"], "hi": f["hi"] / one["lo"],
                     "n": min(f["n"], one["n"]), "unit": "x", "source": f["source"]})
    return pd.DataFrame(rows)


def measurements(models: list[str], runs: dict[str, RunView], roles: dict[str, dict[str, str]], slo: float,
                 serving_level: int) -> pd.DataFrame:
    """One row per (metric, model, precision). A metric measured by two notebooks
    (e.g. DeepSeek bf16 at batch 1 in 01 and 02) keeps the first source, in
    notebook order; both stay in their run tables."""
    rows: list[dict[str, Any]] = []
    for m in models:  # architecture facts: from the configs alone
        cfg = catalog.model(m).hf_config()
        facts = analytic.model_facts(cfg, catalog.precision("bf16"))
        arch = analytic.Architecture.from_config(cfg)
        rows += [row("params_total", m, None, facts.params, "parameters", "architecture config"),
                 row("params_non_embedding", m, None, facts.params_non_embedding, "parameters", "architecture config"),
                 row("max_context_tokens", m, None, arch.max_position, "tokens", "architecture config")]
    for nb in ("01_model_vs_model", "02_precision"):
        view = runs.get(nb)
        if view is None:
            continue
        mine = {role: names[nb] for role, names in roles.items() if nb in names}
        src = f"{nb} ({view.dir.name})"
        cfg = view.table("configs")
        if not cfg.empty:
            shape = point_shape(view, mine["batch4"]) if "batch4" in mine else None
            tokens = shape["batch"] * (shape["input_len"] + shape["output_len"]) if shape else None
            rows += engine_metrics(cfg, src, tokens)
            if nb == "01_model_vs_model":
                rows += architecture_metrics(cfg, models, src)
        rows += point_metrics(view.table("runs"), src, mine)
    if "04_serving" in runs:
        rows += serving_metrics(runs["04_serving"], slo, serving_level)
    if "06_edge" in runs:
        rows += gguf_metrics(runs["06_edge"].table("gguf_files"), f"06_edge ({runs['06_edge'].dir.name})")
    df = pd.DataFrame(rows)
    df = pd.concat([df, batch4_over_batch1(df)], ignore_index=True)
    return df.drop_duplicates(["metric", "model", "precision"], keep="first").reset_index(drop=True)
