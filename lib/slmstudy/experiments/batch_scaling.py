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
from ..engine.spec import BenchLatencyJob, EngineJob, FrontendCheck, HarnessCheck, Point
from ..figures import styled
from ..jobs import Job
from ..params import PrecisionKey, Problem, Strict, StudyParams, Workload
from ..params.options import BatchSize, Tokens
from . import frontend_cost, harness_cost
from .base import Experiment, Study
from .common import (
    AnatomyParams,
    OverheadParams,
    anatomy_check,
    engine_job,
    engine_spec,
    hardware_job,
    hardware_limits,
    overhead_check,
    overhead_probe_job,
    points,
)

NOTEBOOK = "03_batch_scaling"
CROSSCHECK_PREFIX = "crosscheck_b"  # the cross-check's points: not part of the sweep's tables and figures
CROSSCHECK_POINT = CROSSCHECK_PREFIX + "1"


class CrossCheck(Strict):
    """Run ``vllm bench latency`` with the same engine arguments at each of
    ``batch_sizes`` (each one of the sweep's batch sizes).

    Our side of each comparison is a point of that batch, measured first on the
    engine, with as many repetitions as bench latency has iterations: small-batch
    decoding is bound by the host (a step takes ~2 ms), so single runs vary by
    several percent and both sides need the same, larger sample."""

    enabled: bool = True
    batch_sizes: list[BatchSize] = Field(default_factory=lambda: [1], min_length=1, max_length=8)
    iters: PositiveInt = Field(20, le=1000)
    warmup: PositiveInt = Field(3, le=100)
    # Agreement: the pooled difference within tolerance_pct, or a 95% CI that holds
    # zero and is narrower than +-max_ci_half_width_pct.
    tolerance_pct: float = Field(5.0, gt=0)
    max_ci_half_width_pct: float = Field(5.0, gt=0)
    # Rounds of (bench latency processes, fresh engine of ours), models interleaved,
    # pooled for the verdict. On the H100 one round of either tool varies by +-10%
    # from process to process (host-bound steps), more than the tolerance; with 3
    # rounds or more the CI comes from the rounds' own differences.
    rounds: PositiveInt = Field(1, le=20)
    # Also ``vllm bench throughput`` at the largest of batch_sizes, once per round, just
    # before the same engine: one offline batch of that many random prompts.
    throughput: bool = False


class HarnessParams(Strict):
    """What our per-token streaming and timing cost: inside one engine, runs whose
    tokens are streamed and timed one by one alternate (ABBA) with runs of the
    same batch and prompt lengths that collect final outputs only."""

    batch_sizes: list[BatchSize] = Field(default_factory=lambda: [1, 64, 256], min_length=1, max_length=8)
    input_len: Tokens = 128
    output_len: Tokens = 256
    pairs: PositiveInt = Field(6, le=100)
    target_pct: float = Field(1.0, gt=0)  # the slowdown the check accepts


class FrontendParams(Strict):
    """Whether ``AsyncLLM`` (our harness's engine) costs more than ``LLM`` (``vllm bench
    latency``'s), inside one process (``engine.frontend_ab``). A job per model: two
    engines must fit, so each gets ``memory_share`` (``gpu_memory_utilization``)."""

    batch_sizes: list[BatchSize] = Field(default_factory=lambda: [1, 16, 64, 256], min_length=1, max_length=8)
    input_len: Tokens = 128
    output_len: Tokens = 256
    pairs: PositiveInt = Field(6, le=100)
    memory_share: float = Field(0.4, gt=0, le=0.45)  # two engines in one device's memory
    target_pct: float = Field(3.0, gt=0)  # the cross-check's own target


class Params(StudyParams):
    precision: PrecisionKey = "bf16"
    workload: Workload
    bench_latency: CrossCheck = CrossCheck()
    harness_check: HarnessParams | None = None
    frontend_check: FrontendParams | None = None
    telemetry_overhead: OverheadParams | None = None
    anatomy: AnatomyParams | None = None

    def precision_fields(self) -> list[tuple[str, str]]:
        return [("precision", self.precision)]

    def workload_fields(self) -> list[tuple[str, Workload]]:
        out = [("workload", self.workload)]
        if (h := self.harness_check) is not None:
            # Same limits as a workload (context, max_num_seqs, KV cache), named by its own keys.
            out.append(("harness_check", Workload(input_len=h.input_len, output_len=h.output_len,
                                                  batch_sizes=h.batch_sizes)))
        if (f := self.frontend_check) is not None:
            out.append(("frontend_check", Workload(input_len=f.input_len, output_len=f.output_len,
                                                   batch_sizes=f.batch_sizes)))
        return out

    def check(self) -> list[Problem]:
        xc = self.bench_latency
        extra = sorted(set(xc.batch_sizes) - set(self.workload.batch_sizes)) if xc.enabled else []
        problems = []
        if extra:
            problems.append(Problem(("bench_latency.batch_sizes", "workload.batch_sizes"),
                                    f"cross-check batch sizes {extra} are not in the sweep; allowed: "
                                    f"{sorted(self.workload.batch_sizes)}"))
        if self.anatomy is not None:
            problems += self.anatomy.check(self.workload)
        return problems

    def max_batch(self) -> int:
        h, f = self.harness_check, self.frontend_check  # the anatomy's batch sizes are the sweep's (check)
        return max([*self.workload.batch_sizes, *(h.batch_sizes if h else []), *(f.batch_sizes if f else [])])


def crosscheck_points(p: Params) -> tuple[Point, ...]:
    w, xc = p.workload, p.bench_latency
    return tuple(Point(name=f"{CROSSCHECK_PREFIX}{b}", batch=b, input_len=w.input_len, output_len=w.output_len,
                       repetitions=xc.iters, warmup=xc.warmup, temperature=w.temperature, first=True)
                 for b in sorted(set(xc.batch_sizes)))


def crosscheck_point(p: Params) -> Point:
    """The batch-1 cross-check point (or the smallest batch's)."""
    return crosscheck_points(p)[0]


def is_crosscheck(point: pd.Series) -> pd.Series:
    return point.astype(str).str.startswith(CROSSCHECK_PREFIX)


def harness_check(h: HarnessParams) -> HarnessCheck:
    return HarnessCheck(batch_sizes=tuple(h.batch_sizes), input_len=h.input_len, output_len=h.output_len,
                        pairs=h.pairs)


def frontend_job(p: Params, model: str, f: FrontendParams) -> EngineJob:
    """The front-end A/B's engine: the cross-check's engine arguments but for its
    memory share (a second engine, ``LLM``, starts beside it in the same process)."""
    spec = engine_spec(p, model, p.precision, p.max_batch())
    spec = spec.model_copy(update={"engine": spec.engine.model_copy(update={"gpu_memory_utilization": f.memory_share})})
    check = FrontendCheck(batch_sizes=tuple(f.batch_sizes), input_len=f.input_len, output_len=f.output_len,
                          pairs=f.pairs, temperature=p.workload.temperature)
    return EngineJob(engine=spec, timeout_s=p.config_timeout_s, frontend_check=check)


def jobs(p: Params) -> list[Job]:
    """Per model one engine with the sweep. With the cross-check: our side of each
    cross-check batch first on that engine, ``vllm bench latency`` at each of those
    batches just before it, and further rounds as fresh engines of the same
    arguments measuring those points alone."""
    sweep = points(p.workload)
    xc = p.bench_latency
    xpoints = crosscheck_points(p) if xc.enabled else ()
    out: list[Job] = [hardware_job()]
    if p.telemetry_overhead is not None:
        out.append(overhead_probe_job(p, p.telemetry_overhead))
    max_batch = p.max_batch()
    for i, model in enumerate(p.models):
        # The sampler-overhead check needs one engine only: the first model's;
        # the harness check runs on every model's (their step times differ).
        check = overhead_check(p.telemetry_overhead) if p.telemetry_overhead is not None and i == 0 else None
        harness = harness_check(p.harness_check) if p.harness_check is not None else None
        out.append(engine_job(p, model, p.precision, xpoints + sweep, max_batch, overhead_check=check,
                              harness_check=harness, anatomy=anatomy_check(p.anatomy, p.workload)))
    for n in range(1, xc.rounds + 1 if xc.enabled else 1):
        for model in p.models:
            spec = engine_spec(p, model, p.precision, max_batch)
            out += [BenchLatencyJob(engine=spec, point=pt, iters=xc.iters, warmup=xc.warmup, round=n)
                    for pt in xpoints]
            if xc.throughput:
                out.append(BenchLatencyJob(engine=spec, point=xpoints[-1], iters=1, warmup=0, round=n,
                                           tool="throughput"))
            if n > 1:
                out.append(engine_job(p, model, p.precision, xpoints, max_batch, round=n))
    if p.frontend_check is not None:
        out += [frontend_job(p, model, p.frontend_check) for model in p.models]
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
    runs = runs[~is_crosscheck(runs["point"])]
    return stats.summarize(runs, ["model", "precision", "batch"], [m for m in METRICS if m in runs])


def _tool(df: pd.DataFrame, tool: str) -> pd.DataFrame:
    """Rows of one vLLM benchmark (folders from before ``tool`` existed hold latency only)."""
    if df.empty:
        return df
    return df[df["tool"].fillna("latency") == tool] if "tool" in df else (df if tool == "latency" else df.iloc[0:0])


def crosscheck(study: Study[Params], tool: str = "latency") -> pd.DataFrame:
    """Speed from our stream measurement against ``vllm bench latency`` at each
    cross-check batch, same engine arguments, same input and output lengths: one
    row per model, batch and round, then per model and batch the verdict row
    (round ``all``) on the medians of all rounds' runs, with the 95% CI of the
    difference and its verdict. ``tool="throughput"``: against ``vllm bench
    throughput`` at the largest cross-check batch (one value per round, so the CI
    needs 3 rounds or more)."""
    p = study.params
    xc = p.bench_latency
    if not xc.enabled or (tool == "throughput" and not xc.throughput):
        # no rows, but the columns the notebook selects on
        return pd.DataFrame(columns=["model", "batch", "round", "verdict"])
    runs = study.table("runs")
    bench = _tool(study.table("bench"), tool)
    bench_runs = _tool(study.table("bench_runs"), tool)
    configs = study.table("configs")
    rows = []
    points = crosscheck_points(p) if tool == "latency" else crosscheck_points(p)[-1:]
    for model in p.models:
        for point in points:
            ours_all, theirs_all, first = [], [], len(rows)
            for n in range(1, xc.rounds + 1):
                cfg = configs[(configs["model"] == model) & (configs["round"] == n) & (configs["start"] == "any")] \
                    if not configs.empty and "round" in configs else configs.iloc[0:0]
                key = cfg["config"].iloc[0] if len(cfg) else None
                mine = runs[(runs["config"] == key) & (runs["point"] == point.name)] if key and not runs.empty \
                    else pd.DataFrame({"output_tok_s": [], "t0": []})
                b = bench[(bench["model"] == model) & (bench["round"] == n) & (bench["batch"] == point.batch)] \
                    if not bench.empty else bench
                theirs = bench_runs[(bench_runs["model"] == model) & (bench_runs["round"] == n)
                                    & (bench_runs["batch"] == point.batch)]["output_tok_s"] \
                    .to_numpy(float) if not bench_runs.empty else np.zeros(0)
                ours = mine["output_tok_s"].to_numpy(dtype=float)
                finished = float(b["finished_at"].iloc[0]) if len(b) else float("nan")
                gap_s = float(mine["t0"].min() - finished) if len(mine) else float("nan")
                error = b["root_cause"].iloc[0] if len(b) and b["status"].iloc[0] != "ok" else None
                rows.append(_compare(model, p.precision, point, str(n), [ours], [theirs], xc,
                                     seconds_between=gap_s, bench_error=error,
                                     **_conditions(mine, b.iloc[0].to_dict() if len(b) else {})))
                ours_all.append(ours)
                theirs_all.append(theirs)
            # Conditions of the pooled row: the rounds' means (rounds without telemetry left out).
            pooled = pd.DataFrame(rows[first:]).filter(like="_during_").mean()
            rows.append(_compare(model, p.precision, point, "all", ours_all, theirs_all, xc,
                                 seconds_between=float("nan"), bench_error=None, **pooled.to_dict()))
    return pd.DataFrame(rows)


def crosscheck_verdict(df: pd.DataFrame, tolerance_pct: float, tool: str = "latency") -> str:
    """The cross-check's verdict in one sentence per model, from its pooled rows."""
    if df.empty:
        return ("not run: this profile sets bench_latency.enabled: false" if tool == "latency" else
                "not run: this profile does not set bench_latency.throughput")
    parts = []
    for model, g in df[df["round"] == "all"].groupby("model", sort=False):
        cells = [crosscheck_cell(r) for _, r in g.sort_values("batch").iterrows()]
        parts.append(f"{model} against vllm bench {tool} (tolerance {tolerance_pct:g}%): " + ", ".join(cells))
    return "; ".join(parts) + "."


def crosscheck_cell(r: pd.Series) -> str:
    """One pooled cross-check row in words: its batch, difference, CI where the rounds
    gave one, and verdict (the notebook's sentence and the README's line)."""
    ci = f" [{r['difference_ci_lo']:+.1f}, {r['difference_ci_hi']:+.1f}]" if np.isfinite(r["difference_ci_lo"]) else ""
    return f"batch {r['batch']} {r['median_difference_pct']:+.1f}%{ci} {r['verdict']}"


def crosscheck_conditions(df: pd.DataFrame) -> pd.DataFrame:
    """Per model, over the cross-check's pairs (one batch in one round: ``crosscheck``'s
    rows other than the pooled ones), how often our engine's process took more CPU than
    the vLLM benchmark's and kept the GPU busy less of the time, with each side's median.
    Batch-1 to 256 decoding of these models is paced by the host: a process that spends
    more CPU per step leaves the GPU idle between steps, which is where a pair's gap comes
    from when both sides ran on one machine minutes apart. Pairs without telemetry on a
    side are left out (NaN medians where none has it: the CPU host has no GPU)."""
    rows = []
    for model, g in df[df["round"] != "all"].groupby("model", sort=False):
        out: dict[str, Any] = {"model": model}
        for cond, ours_more in (("proc_cpu_pct", True), ("util_gpu_pct", False)):
            a, b = g.get(f"slmstudy_during_{cond}_mean"), g.get(f"bench_during_{cond}_mean")
            both = pd.concat([a, b], axis=1).dropna() if a is not None and b is not None else pd.DataFrame()
            x, y = (both.iloc[:, 0], both.iloc[:, 1]) if len(both) else (pd.Series(dtype=float),) * 2
            out |= {f"{cond}_pairs": len(both), f"{cond}_ours_median": x.median(), f"{cond}_bench_median": y.median(),
                    f"{cond}_pairs_ours_{'more' if ours_more else 'less'}": int(((x > y) if ours_more else (x < y)).sum())}
        rows.append(out)
    return pd.DataFrame(rows)


def crosscheck_conditions_sentence(c: pd.DataFrame, tool: str = "latency") -> str:
    """``crosscheck_conditions`` in one sentence ('' where no pair has telemetry)."""
    parts = []
    for r in c.to_dict("records"):
        said = []
        if r["proc_cpu_pct_pairs"]:
            said.append(f"took more CPU in its engine process in {r['proc_cpu_pct_pairs_ours_more']} of "
                        f"{r['proc_cpu_pct_pairs']} pairs (medians {r['proc_cpu_pct_ours_median']:.0f}% vs "
                        f"{r['proc_cpu_pct_bench_median']:.0f}%)")
        if r["util_gpu_pct_pairs"]:
            said.append(f"kept the GPU busy less of the time in {r['util_gpu_pct_pairs_ours_less']} of "
                        f"{r['util_gpu_pct_pairs']} (medians {r['util_gpu_pct_ours_median']:.0f}% vs "
                        f"{r['util_gpu_pct_bench_median']:.0f}%)")
        if said:
            parts.append(f"{r['model']}: ours " + " and ".join(said))
    return (f"While each pair measured, against vllm bench {tool}: " + "; ".join(parts) + ".") if parts else ""


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


def _compare(model: str, precision: str, point: Point, rnd: str, ours_by_round: list[np.ndarray],
             theirs_by_round: list[np.ndarray], xc: CrossCheck, **extra: Any) -> dict[str, Any]:
    ours = np.concatenate(ours_by_round) if ours_by_round else np.zeros(0)
    theirs = np.concatenate(theirs_by_round) if theirs_by_round else np.zeros(0)
    mean, lo, hi, n = stats.mean_ci(ours)
    t_mean, t_lo, t_hi, t_n = stats.mean_ci(theirs)
    # Judged on medians: host jitter makes a few runs of either side much slower.
    ours_med = float(np.median(ours)) if len(ours) else float("nan")
    theirs_med = float(np.median(theirs)) if len(theirs) else float("nan")
    d = stats.relative_difference_ci(ours_by_round, theirs_by_round)
    diff = d["difference_pct"]
    verdict = stats.agreement_verdict(diff, d["ci_lo"], d["ci_hi"], xc.tolerance_pct, xc.max_ci_half_width_pct)
    return {
        "model": model, "precision": precision, "round": rnd, "batch": point.batch,
        "input_len": point.input_len, "output_len": point.output_len,
        "slmstudy_median_tok_s": ours_med, "slmstudy_mean_tok_s": mean,
        "slmstudy_ci95": f"[{lo:.1f}, {hi:.1f}]", "slmstudy_n": n,
        "bench_median_tok_s": theirs_med, "bench_mean_tok_s": t_mean,
        "bench_ci95": f"[{t_lo:.1f}, {t_hi:.1f}]", "bench_n": t_n,
        "median_difference_pct": diff,
        "difference_ci_lo": d["ci_lo"], "difference_ci_hi": d["ci_hi"], "ci_method": d["method"],
        "verdict": verdict,
        "within_tolerance": bool(abs(diff) <= xc.tolerance_pct) if diff == diff else False,
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


def harness(study: Study[Params]) -> pd.DataFrame:
    """What our per-token streaming and timing cost, per model and batch: inside
    one engine, streamed runs against final-output-only runs of the same batch and
    prompts, in ABBA pairs (so slow drifts of the host cancel). Slowdown per pair
    = (final - streamed) / final throughput; mean and 95% CI over the pairs; and
    each run split on the engine core's clock (harness_cost)."""
    h = study.params.harness_check
    if h is None:
        return pd.DataFrame([{"note": "not measured: this profile sets harness_check: null "
                                      "(the -f layer params/03_batch_scaling/fidelity_gpu.yaml turns it on)"}])
    return harness_cost.rows(study.table("harness"), h.target_pct)


def frontends(study: Study[Params]) -> pd.DataFrame:
    """AsyncLLM against LLM.generate inside one process, per model and batch (``frontend_cost``)."""
    f = study.params.frontend_check
    if f is None:
        return pd.DataFrame([{"note": "not measured: this profile sets frontend_check: null "
                                      "(the -f layer params/03_batch_scaling/fidelity_gpu.yaml turns it on)"}])
    return frontend_cost.rows(study.table("frontend"), f.target_pct)


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
