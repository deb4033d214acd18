"""03_batch_scaling: throughput and latency as the batch grows, per model.

For each model (one engine each), batches of 1, 2, 4, ... requests are submitted
at once; every token's arrival is timed. Output tokens/s and requests/min come
from the wall time of the batch; time to first token and time per output token
from each request's stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, PositiveInt

from .. import stats
from ..engine.spec import BenchLatencyJob, Point
from ..figures import styled
from ..jobs import Job
from ..params import PrecisionKey, Strict, StudyParams, Workload
from .base import Experiment, Study
from .common import (
    OverheadParams,
    engine_job,
    engine_spec,
    hardware_job,
    hardware_limits,
    overhead_check,
    overhead_probe_job,
    points,
)

NOTEBOOK = "03_batch_scaling"
CROSSCHECK_POINT = "crosscheck_b1"  # not part of the sweep's tables and figures


class CrossCheck(Strict):
    """Run ``vllm bench latency`` with the same engine arguments at batch 1.

    Our side of the comparison is a dedicated batch-1 point, measured first on
    the engine, with as many repetitions as bench latency has iterations:
    batch-1 decoding is bound by the host (a step takes ~2 ms), so single runs
    vary by several percent and both sides need the same, larger sample."""

    enabled: bool = True
    iters: PositiveInt = Field(20, le=1000)
    warmup: PositiveInt = Field(3, le=100)
    tolerance_pct: float = Field(5.0, gt=0)
    # Rounds of (bench latency process, fresh engine of ours), models interleaved,
    # pooled for the verdict. On the H100 one round of either tool varies by ±10%
    # from process to process (host-bound steps), more than the tolerance.
    rounds: PositiveInt = Field(1, le=20)


class Params(StudyParams):
    precision: PrecisionKey = "bf16"
    workload: Workload
    bench_latency: CrossCheck = CrossCheck()
    telemetry_overhead: OverheadParams | None = None

    def precision_fields(self) -> list[tuple[str, str]]:
        return [("precision", self.precision)]

    def workload_fields(self) -> list[tuple[str, Workload]]:
        return [("workload", self.workload)]


def crosscheck_point(p: Params) -> Point:
    w = p.workload
    return Point(name=CROSSCHECK_POINT, batch=1, input_len=w.input_len, output_len=w.output_len,
                 repetitions=p.bench_latency.iters, warmup=p.bench_latency.warmup, temperature=w.temperature,
                 first=True)


def jobs(p: Params) -> list[Job]:
    """Per model one engine with the sweep. With the cross-check: our batch-1 side
    first on that engine, ``vllm bench latency`` just before it, and further rounds
    as fresh engines of the same arguments measuring that point alone."""
    sweep = points(p.workload)
    xc = p.bench_latency
    out: list[Job] = [hardware_job()]
    if p.telemetry_overhead is not None:
        out.append(overhead_probe_job(p, p.telemetry_overhead))
    max_batch = max(p.workload.batch_sizes)
    for i, model in enumerate(p.models):
        pts = ((crosscheck_point(p),) if xc.enabled else ()) + sweep
        # The sampler-overhead check needs one engine only: the first model's.
        check = overhead_check(p.telemetry_overhead) if p.telemetry_overhead is not None and i == 0 else None
        out.append(engine_job(p, model, p.precision, pts, max_batch, overhead_check=check))
    if xc.enabled:
        for n in range(1, xc.rounds + 1):
            for model in p.models:
                spec = engine_spec(p, model, p.precision, max_batch)
                out.append(BenchLatencyJob(engine=spec, point=crosscheck_point(p), iters=xc.iters,
                                           warmup=xc.warmup, round=n))
                if n > 1:
                    out.append(engine_job(p, model, p.precision, (crosscheck_point(p),), max_batch, round=n))
    return out


EXPERIMENT = Experiment(NOTEBOOK, "Batch scaling", Params, jobs)


METRICS = ["output_tok_s", "req_per_min", "ttft_mean_s", "ttft_p99_s", "tpot_mean_s", "itl_p99_s",
           "j_per_output_token", "j_per_output_token_above_idle", "power_w_mean", "util_gpu_pct_mean", "gpm_sm_active_pct_mean",
           "gpm_sm_occupancy_pct_mean", "gpm_tensor_active_pct_mean", "gpm_dram_bw_pct_mean",
           "proc_cpu_pct_mean"]


def summary(study: Study[Params]) -> pd.DataFrame:
    """Mean and 95% CI per model and batch size over the measured repetitions."""
    runs = study.table("runs")
    if runs.empty:
        return runs
    runs = runs[runs["point"] != CROSSCHECK_POINT]
    return stats.summarize(runs, ["model", "precision", "batch"], [m for m in METRICS if m in runs])


def crosscheck(study: Study[Params]) -> pd.DataFrame:
    """Batch-1 speed from our stream measurement against ``vllm bench latency``,
    same engine arguments, same input and output lengths: one row per model and
    round, then the verdict row (round ``all``) on the medians of all rounds' runs."""
    p = study.params
    if not p.bench_latency.enabled:
        return pd.DataFrame()
    runs = study.table("runs")
    bench = study.table("bench")
    bench_runs = study.table("bench_runs")
    configs = study.table("configs")
    point = crosscheck_point(p)
    rows = []
    for model in p.models:
        ours_all, theirs_all, first = [], [], len(rows)
        for n in range(1, p.bench_latency.rounds + 1):
            cfg = configs[(configs["model"] == model) & (configs["round"] == n) & (configs["start"] == "any")] \
                if not configs.empty and "round" in configs else configs.iloc[0:0]
            key = cfg["config"].iloc[0] if len(cfg) else None
            mine = runs[(runs["config"] == key) & (runs["point"] == CROSSCHECK_POINT)] if key and not runs.empty \
                else pd.DataFrame({"output_tok_s": [], "t0": []})
            b = bench[(bench["model"] == model) & (bench["round"] == n)] if not bench.empty else bench
            theirs = bench_runs[(bench_runs["model"] == model) & (bench_runs["round"] == n)]["output_tok_s"] \
                .to_numpy(float) if not bench_runs.empty else np.zeros(0)
            ours = mine["output_tok_s"].to_numpy(dtype=float)
            finished = float(b["finished_at"].iloc[0]) if len(b) else float("nan")
            gap_s = float(mine["t0"].min() - finished) if len(mine) else float("nan")
            error = b["root_cause"].iloc[0] if len(b) and b["status"].iloc[0] != "ok" else None
            rows.append(_compare(model, p.precision, point, str(n), ours, theirs, p.bench_latency.tolerance_pct,
                                 seconds_between=gap_s, bench_error=error,
                                 **_conditions(mine, b.iloc[0].to_dict() if len(b) else {})))
            ours_all.append(ours)
            theirs_all.append(theirs)
        # Conditions of the pooled row: the rounds' means (rounds without telemetry left out).
        pooled = pd.DataFrame(rows[first:]).filter(like="_during_").mean()
        rows.append(_compare(model, p.precision, point, "all", np.concatenate(ours_all), np.concatenate(theirs_all),
                             p.bench_latency.tolerance_pct, seconds_between=float("nan"), bench_error=None,
                             **pooled.to_dict()))
    return pd.DataFrame(rows)


def crosscheck_verdict(df: pd.DataFrame, tolerance_pct: float) -> str:
    """The cross-check's verdict in one sentence, from its pooled rows."""
    if df.empty:
        return "not run: this profile sets bench_latency.enabled: false"
    parts = []
    for _, r in df[df["round"] == "all"].iterrows():
        d = r["median_difference_pct"]
        word = "within" if r["within_tolerance"] else "outside"
        parts.append(f"{r['model']}: ours {d:+.1f}% against vllm bench latency ({r['slmstudy_median_tok_s']:.0f} vs "
                     f"{r['bench_median_tok_s']:.0f} tok/s, {word} the {tolerance_pct:g}% tolerance)")
    return "; ".join(parts) + "."


# What the host and the GPU were doing while each side measured (telemetry means):
# batch-1 decoding is host-bound, so steal and the processes' CPU explain gaps.
CONDITIONS = ["cpu_steal_pct", "cpu_pct", "proc_cpu_pct", "util_gpu_pct", "gpm_sm_active_pct"]


def _conditions(ours: pd.DataFrame, theirs: dict[str, Any]) -> dict[str, float]:
    out = {}
    for c in CONDITIONS:
        col = f"{c}_mean"
        out[f"slmstudy_during_{col}"] = float(ours[col].mean()) if col in ours and ours[col].notna().any() \
            else float("nan")
        out[f"bench_during_{col}"] = float(theirs.get(col, float("nan")))
    return out


def _compare(model: str, precision: str, point: Point, rnd: str, ours: np.ndarray, theirs: np.ndarray,
             tolerance_pct: float, **extra: Any) -> dict[str, Any]:
    mean, lo, hi, n = stats.mean_ci(ours)
    t_mean, t_lo, t_hi, t_n = stats.mean_ci(theirs)
    # Judged on medians: host jitter makes a few runs of either side much slower.
    ours_med = float(np.median(ours)) if len(ours) else float("nan")
    theirs_med = float(np.median(theirs)) if len(theirs) else float("nan")
    diff = 100 * (ours_med - theirs_med) / theirs_med if theirs_med == theirs_med else float("nan")
    return {
        "model": model, "precision": precision, "round": rnd, "batch": point.batch,
        "input_len": point.input_len, "output_len": point.output_len,
        "slmstudy_median_tok_s": ours_med, "slmstudy_mean_tok_s": mean,
        "slmstudy_ci95": f"[{lo:.1f}, {hi:.1f}]", "slmstudy_n": n,
        "bench_median_tok_s": theirs_med, "bench_mean_tok_s": t_mean,
        "bench_ci95": f"[{t_lo:.1f}, {t_hi:.1f}]", "bench_n": t_n,
        "median_difference_pct": diff,
        "within_tolerance": bool(abs(diff) <= tolerance_pct) if diff == diff else False,
        **extra,
    }


def overhead(study: Study[Params]) -> pd.DataFrame:
    """What the telemetry sampler costs the measured work, two ways:

    * engine runs with the sampler running and stopped, alternated in the
      sweep's engine (real work, but host jitter of several percent per run);
    * a steady launch-bound probe (``telemetry.overhead_probe``) that isolates
      the sampler's interference with kernel launches, precise to a fraction of
      a percent.
    """
    cfg = study.params.telemetry_overhead
    if cfg is None:
        return pd.DataFrame([{"note": "not measured: this profile sets telemetry_overhead: null "
                                      "(the -f layer params/03_batch_scaling/fidelity_gpu.yaml turns it on)"}])
    rows = []
    df = study.table("overhead")
    for batch, g in (df.groupby("batch") if not df.empty else []):
        on = g[g["telemetry"]].sort_values("pair")["output_tok_s"].to_numpy()
        off = g[~g["telemetry"]].sort_values("pair")["output_tok_s"].to_numpy()
        m, lo, hi, n = stats.mean_ci(100 * (off - on) / off)
        rows.append({"workload": f"engine, batch {batch}, {cfg.input_len} in / {cfg.output_len} out",
                     "with_sampler": on.mean(), "without": off.mean(), "unit": "output tok/s",
                     "slowdown_pct": m, "ci95": f"[{lo:.2f}, {hi:.2f}]", "pairs": n})
    probes = study.folder.config_files("probe.json")
    if probes:
        import json

        probe = json.loads(next(iter(probes.values())).read_text())
        lo, hi = probe["slowdown_pct_ci95"]
        rows.append({"workload": f"launch-bound probe on {probe['device']} (28 small matmuls + a host sync per step)",
                     "with_sampler": probe["steps_per_s_with_sampler"], "without": probe["steps_per_s_without"],
                     "unit": "steps/s", "slowdown_pct": probe["slowdown_pct"], "ci95": f"[{lo:.2f}, {hi:.2f}]",
                     "pairs": probe["n"]})
    return pd.DataFrame(rows).assign(interval_ms=study.params.telemetry.interval_ms)


@styled
def scaling_figure(study: Study[Params]) -> Any:
    """Throughput, requests/min, time to first token and per-token latency against batch size."""
    from .. import figures

    panels = [
        ("output_tok_s", "output tokens/s", 1.0),
        ("req_per_min", "requests/min", 1.0),
        ("ttft_mean_s", "time to first token (ms)", 1000.0),
        ("tpot_mean_s", "time per output token (ms)", 1000.0),
        ("j_per_output_token", "energy per output token (J)", 1.0),
        ("gpm_sm_active_pct_mean", "SM activity, GPM (%)", 1.0),
    ]
    s = summary(study)
    panels = [p for p in panels if p[0] in s and s[p[0]].notna().any()]
    return figures.metric_grid(study, s, panels, "batch_scaling", title="Batch scaling",
                               precision=study.params.precision)


def roofline(study: Study[Params]) -> pd.DataFrame:
    """Achieved tokens/s against the fastest the hardware allows, per model and batch
    (bound from this machine's measured bandwidth and matmul peak)."""
    from .. import roofline as rl

    s = summary(study)
    if s.empty:
        return s
    hw = hardware_limits(study)
    w = study.params.workload
    s = s.assign(input_len=w.input_len, output_len=w.output_len)
    out = rl.attach(s, hw, "measured")
    sheet = rl.attach(s, hw, "datasheet") if hw.get("datasheet") else None
    if sheet is not None:
        out["bound_tok_s_datasheet"] = sheet["bound_tok_s"]
    cols = ["model", "precision", "batch", "output_tok_s", "bound_tok_s", "achieved_fraction",
            "tpot_mean_s", "step_bound_ms", "step_fraction", "decode_bound", "bytes_per_step", "bound_exceeded"]
    if sheet is not None:
        cols.insert(5, "bound_tok_s_datasheet")
    return out[cols]


@styled
def roofline_figure(study: Study[Params]) -> Any:
    """Measured throughput (points, 95% CI) under the hardware bound (line) per model."""
    import matplotlib.pyplot as plt

    from .. import figures

    df = roofline(study)
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.6))
    for model, g in df.groupby("model", sort=False):
        g = g.sort_values("batch")
        line = axes[0].plot(g["batch"], g["bound_tok_s"], "--", lw=1.2)[0]
        axes[0].plot(g["batch"], g["output_tok_s"], "o-", color=line.get_color(), label=figures.model_name(model))
        if "bound_tok_s_datasheet" in g:
            axes[0].plot(g["batch"], g["bound_tok_s_datasheet"], ":", color=line.get_color(), lw=1)
        axes[1].plot(g["batch"], 100 * g["achieved_fraction"], "o-", color=line.get_color(), label=figures.model_name(model))
    for ax in axes:
        figures.batch_axis(ax, df["batch"])
    figures.legend_outside(axes[1])
    axes[0].set_ylabel("output tokens/s (dashed: bound from measured\nbandwidth and peak; dotted: datasheet)")
    axes[1].set_ylabel("% of the hardware bound achieved")
    axes[1].set_ylim(0, 100)
    axes[0].set_yscale("log")
    fig.suptitle("Distance to the hardware limit")
    fig.tight_layout()
    return figures.finish(fig, study, "roofline", study.caption(study.params.precision))
