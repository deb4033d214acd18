"""00_report: reads the other notebooks' runs, builds the measurement table the
claims are judged against, and the headline figures.

Which runs: by default, for each notebook, the run folder its current
parameters map to under ``outputs/runs`` (what ``make study`` just produced),
else that notebook's most recent run; or, with ``source: reference/h100``, the
committed reference runs under ``outputs/reference/h100/<notebook>/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from .. import analytic, catalog, paths, stats
from ..params import StudyParams
from ..report import start_memory_gib
from ..results.run_folder import folder_for
from .serving import in_flight

NOTEBOOK = "00_report"
SOURCES = ("01_model_vs_model", "02_precision", "03_batch_scaling", "04_serving")


class Params(StudyParams):
    """The report runs no engine; ``models`` names the two compared models."""

    source: str = Field("runs", pattern=r"^(runs|reference/[A-Za-z0-9_-]+)$")
    slo_ttft_s: float = Field(0.2, gt=0)


def configs(p: Params) -> list[Any]:
    return []


class RunView:
    """Read-only access to another notebook's run folder (tables and JSON files)."""

    def __init__(self, notebook: str, folder: Path):
        self.notebook = notebook
        self.dir = folder

    def table(self, name: str) -> pd.DataFrame:
        path = self.dir / "tables" / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    def json(self, name: str) -> Any:
        path = self.dir / name
        return json.loads(path.read_text()) if path.exists() else None

    def environment(self) -> dict[str, Any]:
        return self.json("environment.json") or {}


def find_runs(study: Any) -> dict[str, RunView]:
    from ..study import resolve

    found: dict[str, RunView] = {}
    for nb in SOURCES:
        if study.params.source != "runs":
            folder = paths.outputs_dir() / study.params.source / nb
            if (folder / "tables").is_dir():
                found[nb] = RunView(nb, folder)
            continue
        candidates = []
        try:
            candidates.append(folder_for(resolve(nb, study.resolved.profile)))
        except Exception:  # the notebook's parameters may not exist in this checkout
            pass
        others = sorted((paths.runs_dir() / nb).glob(f"{study.resolved.profile}-*"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for folder in candidates + others:
            if any((folder / "tables" / f"{t}.parquet").exists() for t in ("runs", "configs", "levels")):
                found[nb] = RunView(nb, folder)
                break
    return found


def runs_used(runs: dict[str, RunView]) -> pd.DataFrame:
    rows = []
    for nb, view in runs.items():
        env = view.environment()
        rows.append({"notebook": nb, "run folder": str(view.dir), "device": env.get("gpu_name") or env.get("cpu_model"),
                     "vLLM": f"{env.get('vllm_dist')} {env.get('vllm')}", "git commit": (env.get("git_commit") or "")[:10]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ measurements
def _row(metric: str, model: str | None, precision: str | None, values: Any, unit: str, source: str) -> dict[str, Any]:
    if isinstance(values, (int, float)):
        values = [values]
    mean, lo, hi, n = stats.mean_ci(list(values))
    return {"metric": metric, "model": model, "precision": precision, "value": mean, "lo": lo, "hi": hi,
            "n": n, "unit": unit, "source": source}


def _engine_metrics(cfg: pd.DataFrame, source: str, workload_tokens: int) -> list[dict[str, Any]]:
    rows = []
    for _, r in cfg[cfg["status"] == "ok"].iterrows():
        m, p = r["model"], r["precision"]
        start = r.get("start", "warm")
        key = "engine_start_cold_s" if start == "cold" else "engine_start_warm_s"
        rows.append(_row(key, m, p, r["engine_start_s"], "s", source))
        if start == "cold":
            continue  # memory and KV figures from the measured (warm) engine
        facts = analytic.model_facts(catalog.model(m).hf_config(), catalog.precision(p))
        start_mem = start_memory_gib(r)
        rows += [
            _row("weights_gib", m, p, r["weights_gib"] if r["weights_gib"] == r["weights_gib"] else r["weights_gib_params"], "GiB", source),
            _row("start_memory_gib", m, p, start_mem, "GiB", source),
            _row("workload_memory_gib", m, p, start_mem + workload_tokens * facts.kv_bytes_per_token / 2**30, "GiB", source),
            _row("kv_bytes_per_token", m, p, facts.kv_bytes_per_token, "bytes", source),
        ]
        if r.get("peak_device_mem_gib") == r.get("peak_device_mem_gib") and r.get("peak_device_mem_gib") is not None:
            rows.append(_row("peak_memory_gib", m, p, r["peak_device_mem_gib"], "GiB", source))
        if r.get("kv_capacity_tokens"):
            rows.append(_row("kv_capacity_tokens", m, p, r["kv_capacity_tokens"], "tokens", source))
    return rows


def _point_metrics(runs: pd.DataFrame, source: str, point_of: dict[str, str]) -> list[dict[str, Any]]:
    """``point_of`` maps our metric ids to the point name that measures them."""
    rows = []
    spec = {
        "ttft_b1_s": ("single", "ttft_mean_s", "s"), "output_tok_s_b1": ("single", "output_tok_s", "tok/s"),
        "tpot_b1_s": ("single", "tpot_mean_s", "s"), "j_per_output_token_b1": ("single", "j_per_output_token", "J"),
        "gpm_sm_active_pct_b1": ("single", "gpm_sm_active_pct_mean", "%"),
        "output_tok_s_b4": ("batch4", "output_tok_s", "tok/s"), "req_per_min_b4": ("batch4", "req_per_min", "req/min"),
        "time_100in_512out_s": ("in100_out512", "wall_s", "s"), "tok_s_100in_512out": ("in100_out512", "output_tok_s", "tok/s"),
    }
    for metric, (role, column, unit) in spec.items():
        point = point_of.get(role)
        if point is None or column not in runs:
            continue
        for (m, p), g in runs[runs["point"] == point].groupby(["model", "precision"]):
            rows.append(_row(metric, m, p, g[column].dropna(), unit, source))
    return rows


def measurements(study: Any, runs: dict[str, RunView]) -> pd.DataFrame:
    """One row per (metric, model, precision): value with 95% CI, unit and source run."""
    rows: list[dict[str, Any]] = []
    # architecture facts: from the configs alone
    for m in study.params.models:
        cfg = catalog.model(m).hf_config()
        facts = analytic.model_facts(cfg, catalog.precision("bf16"))
        arch = analytic.Architecture.from_config(cfg)
        rows += [_row("params_total", m, None, facts.params, "parameters", "architecture config"),
                 _row("params_non_embedding", m, None, facts.params_non_embedding, "parameters", "architecture config"),
                 _row("max_context_tokens", m, None, arch.max_position, "tokens", "architecture config")]
    if "01_model_vs_model" in runs:
        v = runs["01_model_vs_model"]
        src = f"01_model_vs_model ({v.dir.name})"
        cfg = v.table("configs")
        if not cfg.empty:
            rows += _engine_metrics(cfg, src, 4 * (128 + 256))
            arch = _architecture_rows(cfg, study.params.models)
            rows += [_row(k, m, None, val, "yes=1", src) for m, k, val in arch]
        rows += _point_metrics(v.table("runs"), src, {"single": "single", "batch4": "batch4", "in100_out512": "in100_out512"})
    if "02_precision" in runs:
        v = runs["02_precision"]
        src = f"02_precision ({v.dir.name})"
        cfg = v.table("configs")
        if not cfg.empty:
            rows += _engine_metrics(cfg, src, 4 * (128 + 256))
        r = v.table("runs")
        if not r.empty:
            r = r.assign(point=r["batch"].map({1: "single", 4: "batch4"}))
            rows += _point_metrics(r, src, {"single": "single", "batch4": "batch4"})
    if "04_serving" in runs:
        rows += _serving_metrics(runs["04_serving"], study.params.slo_ttft_s)
    df = pd.DataFrame(rows)
    df = pd.concat([df, _batch4_over_batch1(df)], ignore_index=True)
    # A metric measured by two notebooks (e.g. DeepSeek bf16 at batch 1 in 01 and
    # 02): keep the first source, in notebook order; both stay in the run tables.
    return df.drop_duplicates(["metric", "model", "precision"], keep="first").reset_index(drop=True)


def _batch4_over_batch1(df: pd.DataFrame) -> pd.DataFrame:
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


def _architecture_rows(cfg: pd.DataFrame, models: list[str]) -> list[tuple[str, str, float]]:
    out = []
    for m in models:
        arch = analytic.Architecture.from_config(catalog.model(m).hf_config())
        tp = any(arch.heads % t == 0 and arch.intermediate % t == 0 and (arch.kv_heads % t == 0 or t % arch.kv_heads == 0)
                 for t in (2, 4, 8))
        ok = cfg[(cfg["model"] == m) & (cfg["status"] == "ok")]
        paged = bool(len(ok) and (ok["kv_capacity_tokens"].fillna(0) > 0).any())
        out += [(m, "tensor_parallel_supported", float(tp)), (m, "paged_attention_supported", float(paged))]
    return out


def _serving_metrics(v: RunView, slo: float) -> list[dict[str, Any]]:
    """From the closed-loop levels: the largest concurrency whose mean TTFT meets
    the objective, and TTFT / end-to-end latency at 16 concurrent users."""
    levels = v.table("levels")
    src = f"04_serving ({v.dir.name})"
    rows: list[dict[str, Any]] = []
    if levels.empty:
        return rows
    closed = levels[levels["mode"] == "concurrency"]
    closed = closed.assign(in_flight=in_flight(closed))
    for (m, p), g in closed.groupby(["model", "precision"]):
        ok = g[(g["status"] != "failed") & (g["ttft_mean_s"] <= slo)]
        rows.append(_row("serving_max_concurrency_meeting_ttft_slo", m, p,
                         float(ok["in_flight"].max()) if len(ok) else 0.0, "concurrent requests", src))
        c16 = g[g["level"] == 16]
        if len(c16):
            rows.append(_row("serving_mean_ttft_s_c16", m, p, float(c16["ttft_mean_s"].iloc[0]), "s", src))
            rows.append(_row("serving_mean_e2e_s_c16", m, p, float(c16["e2e_mean_s"].iloc[0]), "s", src))
    return rows


# ----------------------------------------------------------------------- claims
def claims_table(study: Any, runs: dict[str, RunView]) -> pd.DataFrame:
    """Every claim of the articles beside our measurement, with a verdict and its reason."""
    from .. import claims

    env = next((v.environment() for v in runs.values()), {})
    hardware = env.get("gpu_name") or f"CPU ({env.get('cpu_model')})"
    table = claims.judge(claims.load(), measurements(study, runs), hardware)
    study.folder.write_json("claims.json", table.to_dict(orient="records"))
    _write_markdown(study.dir / "claims.md", table)
    return table


def _write_markdown(path: Path, table: pd.DataFrame) -> None:
    from ..atomic import write_text

    cols = [c for c in ("article", "claim", "claimed", "hardware", "ours", "ratio", "verdict", "reason") if c in table]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                v = "" if v != v else f"{v:.3g}"
            cells.append(str(v).replace("|", "/").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    write_text(path, "\n".join(lines) + "\n")


def verdict_counts(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    return table.groupby(["article", "verdict"]).size().unstack(fill_value=0)


# ---------------------------------------------------------------------- figures
def _caption(view: RunView, extra: str = "") -> str:
    env = view.environment()
    device = env.get("gpu_name") or f"CPU ({env.get('cpu_model')})"
    parts = [device, f"{env.get('vllm_dist')} {env.get('vllm')}", "dummy weights", extra]
    return " | ".join(p for p in parts if p)


def headline_scaling(study: Any, runs: dict[str, RunView]) -> Any:
    """Throughput and true SM activity against batch size, both models, with the hardware bound."""
    import matplotlib.pyplot as plt

    from .. import figures

    view = runs.get("03_batch_scaling")
    if view is None:
        return None
    r = view.table("runs")
    r = r[r["point"].str.match(r"^b\d+$")]
    s = stats.summarize(r, ["model", "batch"], ["output_tok_s", "util_gpu_pct_mean", "gpm_sm_active_pct_mean",
                                                "gpm_tensor_active_pct_mean", "gpm_dram_bw_pct_mean"])
    roof = pd.DataFrame((view.json("roofline.json") or {}).get("rows", []))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    for model, g in s.groupby("model", sort=False):
        line = axes[0].errorbar(g["batch"], g["output_tok_s"], yerr=[g["output_tok_s"] - g["output_tok_s_lo"],
                                g["output_tok_s_hi"] - g["output_tok_s"]], marker="o", capsize=3,
                                label=figures.model_name(model))
        if not roof.empty:
            rr = roof[roof["model"] == model].sort_values("batch")
            axes[0].plot(rr["batch"], rr["bound_tok_s"], "--", color=line[0].get_color(), lw=1)
    if "gpm_sm_active_pct_mean" in s and s["gpm_sm_active_pct_mean"].notna().any():
        for col, label, style in (("util_gpu_pct_mean", "utilization.gpu (nvidia-smi)", "--"),
                                  ("gpm_sm_active_pct_mean", "SM activity (GPM)", "-"),
                                  ("gpm_tensor_active_pct_mean", "tensor-core activity (GPM)", "-"),
                                  ("gpm_dram_bw_pct_mean", "DRAM bandwidth (GPM)", "-")):
            g = s[s["model"] == s["model"].iloc[0]]
            axes[1].plot(g["batch"], g[col], style, marker="o", label=label)
        axes[1].set_title(f"{figures.model_name(s['model'].iloc[0])}: what 'utilisation' means", fontsize=10)
        axes[1].set_ylabel("% (mean over each measured run)")
        axes[1].set_ylim(0, 100)
    else:
        axes[1].text(0.5, 0.5, "GPM metrics need an NVIDIA Hopper GPU", ha="center", transform=axes[1].transAxes)
    for ax in axes:
        figures.batch_axis(ax, s["batch"], "batch (requests at once, 128 tokens in, 256 out)")
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("output tokens/s (dashed: hardware bound)")
    fig.tight_layout()
    return figures.finish(fig, study, "headline_scaling", _caption(view, "BF16 | bars: 95% CI"))


def headline_precision(study: Any, runs: dict[str, RunView]) -> Any:
    """Weights, batch-1 and batch-256 speed and energy per token, per precision."""
    import matplotlib.pyplot as plt

    from .. import figures

    view = runs.get("02_precision")
    if view is None:
        return None
    r = view.table("runs")
    cfg = view.table("configs")
    s = stats.summarize(r, ["precision", "batch"], ["output_tok_s", "j_per_output_token"])
    order = [p for p in catalog.precisions() if p in set(s["precision"])]
    big = int(s["batch"].max())
    panels = [("weights", "weights (GiB)"), (1, "tokens/s at batch 1"), (big, f"tokens/s at batch {big}"),
              ("energy", f"J per output token at batch {big}")]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    names = [catalog.precision(p).display for p in order]
    for ax, (what, label) in zip(axes, panels):
        if what == "weights":
            w = cfg.set_index("precision").reindex(order)
            vals = w["weights_gib"].where(w["weights_gib"].notna(), w.get("weights_gib_params"))
            ax.bar(names, vals, color="#4c72b0")
        else:
            batch = big if what == "energy" else what
            col = "j_per_output_token" if what == "energy" else "output_tok_s"
            g = s[s["batch"] == batch].set_index("precision").reindex(order)
            if col not in g or g[col].isna().all():
                ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
            else:
                ax.bar(names, g[col], yerr=[g[col] - g[f"{col}_lo"], g[f"{col}_hi"] - g[col]], capsize=3,
                       color="#dd8452" if what == "energy" else "#55a868")
        ax.set_title(label, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    model = catalog.model(str(cfg["model"].iloc[0])).display if not cfg.empty else ""
    fig.suptitle(f"{model}: what each precision buys")
    fig.tight_layout()
    return figures.finish(fig, study, "headline_precision", _caption(view, "bars: 95% CI"))
