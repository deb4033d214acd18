"""01_model_vs_model: DeepSeek-R1-Distill-Qwen-1.5B against Llama-3.2-1B, same engine settings.

Per model, two engine processes sharing one private compile cache:

* ``cold``: the cache is emptied first, so the start includes every
  ``torch.compile`` and kernel compilation (what a fresh machine pays);
* ``warm``: the second start, reusing that cache (what a restart pays); the
  workload points are measured on this engine.

Points: article 000's single request and batch of 4 (our default 128 tokens in,
256 out), and article 001's speed test (100 in, 512 out, one request).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import Field

from .. import analytic, catalog, stats
from ..engine.spec import Point
from ..figures import styled
from ..jobs import Job
from ..params import (
    BatchSize,
    PrecisionKey,
    Repetitions,
    Strict,
    StudyParams,
    Tokens,
    Warmup,
    Workload,
)
from ..results.summaries import start_memory_gib
from .base import Experiment, Study
from .common import engine_job

NOTEBOOK = "01_model_vs_model"


class PointParams(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$", max_length=40)
    batch: BatchSize
    input_len: Tokens
    output_len: Tokens


class Params(StudyParams):
    precision: PrecisionKey = "bf16"
    points: list[PointParams] = Field(min_length=1, max_length=16)
    repetitions: Repetitions = 5
    warmup: Warmup = 1
    temperature: float = Field(0.6, ge=0, le=10)
    cold_start: bool = True  # also measure a start with an empty compile cache

    def precision_fields(self) -> list[tuple[str, str]]:
        return [("precision", self.precision)]

    def workload_fields(self) -> list[tuple[str, Workload]]:
        return [(f"points[{i}]", Workload(input_len=p.input_len, output_len=p.output_len, batch_sizes=[p.batch]))
                for i, p in enumerate(self.points)]


def jobs(p: Params) -> list[Job]:
    """Per model: a cold start (its compile cache emptied, no workload: what a fresh
    machine pays), then the engine the points are measured on, whose start reuses
    that cache (what a restart pays)."""
    pts = tuple(Point(name=q.name, batch=q.batch, input_len=q.input_len, output_len=q.output_len,
                      repetitions=p.repetitions, warmup=p.warmup, temperature=p.temperature) for q in p.points)
    max_batch = max(q.batch for q in p.points)
    out: list[Job] = []
    for model in p.models:
        if p.cold_start:
            out.append(engine_job(p, model, p.precision, (), max_batch, start="cold"))
        out.append(engine_job(p, model, p.precision, pts, max_batch))
    return out


EXPERIMENT = Experiment(NOTEBOOK, "Model vs model", Params, jobs)


# ------------------------------------------------------------------ analysis
START_COLUMNS = {
    "engine_start_s": "engine start (s)", "vllm_import_s": "import vLLM (s)",
    "weights_load_s": "weight load (s)", "compile_s": "torch.compile (s)",
    "graph_capture_s": "CUDA graphs (s)", "engine_start_energy_j": "start energy (J)",
    "beside_import_s": "next job's import beside (s)",
}


def start_kind(cfg: pd.DataFrame) -> pd.Series:
    """"cold" where the start found its compile cache empty (or emptied it), else
    "warm": a fact the engine job recorded, not a label we assume."""
    return cfg["compile_cache"].map(lambda c: "warm" if c == "warm" else "cold")


def startup(study: Study[Params]) -> pd.DataFrame:
    """Cold and warm engine start, split where vLLM reports the parts."""
    cfg = study.table("configs")
    if cfg.empty:
        return cfg
    timing = study.table("timing")
    if "beside_import_s" in timing:
        # a start measured with another process importing vLLM beside it says for how long
        cfg = cfg.merge(timing[["job", "beside_import_s"]].rename(columns={"job": "config"}), on="config", how="left")
    cols = [c for c in START_COLUMNS if c in cfg and cfg[c].notna().any()]
    out = cfg.assign(start=start_kind(cfg))[["model", "start", "status", *cols]].rename(columns=START_COLUMNS)
    return out.sort_values(["model", "start"]).reset_index(drop=True)


def memory(study: Study[Params]) -> pd.DataFrame:
    """Memory at start, its breakdown, and the KV cache per token and in total."""
    cfg = study.table("configs")
    if cfg.empty:
        return cfg
    cfg = cfg[(cfg["status"] == "ok") & (cfg["start"] != "cold")].copy()
    cfg["start_memory_gib"] = cfg.apply(start_memory_gib, axis=1)
    cols = {
        "model": "model", "weights_gib": "weights GiB", "weights_gib_analytic": "weights GiB (analytic)",
        "activation_peak_gib": "activations GiB", "cudagraph_gib": "CUDA graphs GiB",
        "non_torch_gib": "non-torch GiB", "start_memory_gib": "at start, without KV GiB",
        "kv_bytes_per_token": "KV bytes/token", "kv_capacity_tokens": "KV capacity (tokens)",
        "kv_cache_gib": "KV cache GiB", "peak_device_mem_gib": "peak device GiB",
        "peak_proc_rss_gib": "peak engine RSS GiB",
    }
    keep = [c for c in cols if c in cfg and cfg[c].notna().any()]
    return cfg[keep].rename(columns=cols).reset_index(drop=True)


def architecture(study: Study[Params]) -> pd.DataFrame:
    """Tensor parallelism and paged attention, answered from the architecture and the engine.

    Tensor parallelism in vLLM splits attention heads and MLP columns across GPUs:
    a size t works when t divides the attention heads and the MLP width, and the
    KV heads either divide by t or are replicated (t a multiple of them). Both
    architectures are implemented in vLLM with tensor-parallel layers; this
    machine has one GPU, so the sizes are derived, not run. Paged attention is
    how vLLM V1 stores every model's KV cache: the engine reported its cache in
    blocks of ``block_size`` tokens, which is the evidence used here.
    """
    cfg = study.table("configs")
    rows = []
    for model in study.params.models:
        arch = analytic.Architecture.from_config(catalog.model(model).hf_config())
        sizes = [t for t in (1, 2, 4, 8, 16) if arch.heads % t == 0 and arch.intermediate % t == 0
                 and (arch.kv_heads % t == 0 or t % arch.kv_heads == 0)]
        row = cfg[(cfg["model"] == model) & (cfg["status"] == "ok")] if not cfg.empty else cfg
        blocks = row["kv_capacity_tokens"].iloc[0] if len(row) else None
        rows.append({
            "model": model, "attention heads": arch.heads, "KV heads": arch.kv_heads,
            "head size": arch.head_dim, "layers": arch.layers, "GQA group": arch.heads // arch.kv_heads,
            "max context (config)": arch.max_position,
            "tensor-parallel sizes": ", ".join(map(str, sizes)),
            "tensor parallel supported": len(sizes) > 1,
            "paged attention (KV in blocks)": bool(blocks and blocks > 0),
            "KV bytes/token": analytic.model_facts(catalog.model(model).hf_config(),
                                                   catalog.precision(study.params.precision)).kv_bytes_per_token,
        })
    return pd.DataFrame(rows)


METRICS = ["output_tok_s", "req_per_min", "ttft_mean_s", "tpot_mean_s", "wall_s", "j_per_output_token", "j_per_output_token_above_idle",
           "power_w_mean", "util_gpu_pct_mean", "gpm_sm_active_pct_mean", "gpm_tensor_active_pct_mean",
           "gpm_dram_bw_pct_mean", "proc_cpu_pct_mean"]


def speed(study: Study[Params]) -> pd.DataFrame:
    """Per model and point: mean and 95% CI over the repetitions."""
    runs = study.table("runs")
    if runs.empty:
        return runs
    return stats.summarize(runs, ["model", "point", "batch", "input_len", "output_len"],
                           [m for m in METRICS if m in runs])


def comparison(study: Study[Params]) -> pd.DataFrame:
    """DeepSeek / Llama ratio per point and metric (>1: DeepSeek higher)."""
    s = speed(study)
    models = study.params.models
    if s.empty or len(models) != 2:
        return pd.DataFrame()
    a, b = models
    rows = []
    for point, g in s.groupby("point", sort=False):
        ga, gb = g[g["model"] == a], g[g["model"] == b]
        if ga.empty or gb.empty:
            continue
        for m in ("output_tok_s", "ttft_mean_s", "tpot_mean_s", "j_per_output_token"):
            if m in g:
                va, vb = ga[m].iloc[0], gb[m].iloc[0]
                overlap = not (ga[f"{m}_hi"].iloc[0] < gb[f"{m}_lo"].iloc[0] or gb[f"{m}_hi"].iloc[0] < ga[f"{m}_lo"].iloc[0])
                rows.append({"point": point, "metric": m, a: va, b: vb, f"{a} / {b}": va / vb,
                             "95% CIs overlap": overlap})
    return pd.DataFrame(rows)


@styled
def speed_figure(study: Study[Params]) -> Any:
    import matplotlib.pyplot as plt

    from .. import figures

    s = speed(study)
    panels = [("output_tok_s", "output tokens/s"), ("ttft_mean_s", "time to first token (ms)"),
              ("tpot_mean_s", "time per output token (ms)"), ("j_per_output_token", "energy per output token (J)")]
    panels = [p for p in panels if p[0] in s and s[p[0]].notna().any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    points = list(dict.fromkeys(s["point"]))
    width = 0.8 / max(s["model"].nunique(), 1)
    for ax, (m, label) in zip(axes[0], panels):
        scale = 1000 if label.endswith("(ms)") else 1
        for i, (model, g) in enumerate(s.groupby("model", sort=False)):
            g = g.set_index("point").reindex(points)
            x = [j + i * width for j in range(len(points))]
            err = [(g[m] - g[f"{m}_lo"]).clip(lower=0, upper=g[m]) * scale, (g[f"{m}_hi"] - g[m]).clip(lower=0) * scale]
            ax.bar(x, g[m] * scale, width, yerr=err, capsize=3, label=figures.model_name(model))
        ax.set_xticks([j + width / 2 for j in range(len(points))], points, rotation=20, fontsize=8)
        ax.set_ylabel(label)
    fig.suptitle(" vs ".join(figures.model_name(m) for m in study.params.models) + ", same engine settings")
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    figures.legend_outside(fig, *axes[0][0].get_legend_handles_labels())
    return figures.finish(fig, study, "model_vs_model", study.caption(study.params.precision, "bars: 95% CI"))
