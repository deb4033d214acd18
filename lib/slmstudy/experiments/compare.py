"""05_compare: two run folders of one notebook side by side, metric by metric, with a
verdict on whether the second reproduces the first.

For every point both runs measured (model, precision and point or load level) and
every metric (throughput, requests/min, TTFT, TPOT, memory, J per token, GPM
activities): each side's mean and 95% CI, the ratio B / A, and a verdict:

* *same*: the 95% CI of the difference includes zero;
* *faster* / *slower* (for speeds and latencies), *higher* / *lower* (for memory,
  energy and activities): it does not;
* *not comparable*: the runs differ in parameters that shape the metric, or in
  the hardware or the precision; the keys that differ are named.

The spread is measured, never assumed: the CI of the difference comes from each
side's repetitions (Welch), widened by the run-to-run spread of fresh processes
where the runs measured it (cross-check rounds), and every row says which. A serving
level is one measurement of many requests: its latencies' spread comes from its requests
(``compare_levels``), its throughput has none.
Between machines, each throughput row also carries the ratio the roofline model
predicts from the two machines' probed bandwidth and matmul peak, and its error.

Where a throughput row differs and the runs traced the GPU and the engine process, the
row says whether the host explains it (``host``): the GPU busy markedly less of the
time on the slower side while the engine process used as much CPU means each step
waited longer for the host, not for the GPU (2026-12-06: Llama-3.2-1B at half its
speed for seven minutes of a sitting, ``utilization.gpu`` 47% against 94% at 115% CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from scipy import stats as st

from .. import paths
from ..errors import SlmstudyError
from ..figures import styled
from ..jobs import Job
from ..params import StudyParams, show
from ..results.run_folder import RunView
from .base import Experiment, Study
from .compare_host import host_diagnosis, host_note
from .compare_levels import client_note, level_rows

NOTEBOOK = "05_compare"
COMPARABLE = ("01_model_vs_model", "02_precision", "03_batch_scaling", "04_serving")

# metric -> (table, sense): "higher" is better for speeds, "lower" for latencies;
# "neutral" metrics (memory, energy, activity) are only higher or lower.
RUN_METRICS = {
    "output_tok_s": "higher", "req_per_min": "higher", "ttft_mean_s": "lower", "tpot_mean_s": "lower",
    "j_per_output_token": "neutral", "gpm_sm_active_pct_mean": "neutral",
    "gpm_tensor_active_pct_mean": "neutral", "gpm_dram_bw_pct_mean": "neutral",
}
LEVEL_METRICS = {"output_tok_s": "higher", "req_s": "higher", "ttft_p50_s": "lower", "ttft_p90_s": "lower",
                 "ttft_mean_s": "lower", "itl_p50_s": "lower", "e2e_mean_s": "lower", "j_per_output_token": "neutral"}
CONFIG_METRICS = {"weights_gib": "neutral", "kv_cache_gib": "neutral", "peak_device_mem_gib": "neutral",
                  "engine_start_s": "lower"}
# Parameters that shape no metric of a point both runs measured: which points and
# models there are (rows are matched), how many repetitions (the CI says), limits
# and the cross-check's own settings; the idle window before each configuration
# (it adds the above-idle energy columns, which a run without it simply lacks).
# The step anatomy too: its profiled windows run after the measured points, on the same
# engine; and the front-end A/B, which has engines of its own. A difference elsewhere makes
# rows not comparable.
IGNORED_PARAMS = {"frontend_check", "telemetry.interval_ms", "telemetry.idle_baseline_s", "config_timeout_s", "engine.start_timeout_s", "bench_latency",
                  "telemetry_overhead", "request_timeout_s", "models", "precisions", "workload.batch_sizes",
                  "workload.repetitions", "repetitions", "points", "closed_loop.concurrency", "open_loop.rates",
                  "cold_start", "agreement", "baseline", "weights_paths", "anatomy", "where_supported"}
# Parameters added after runs that are still compared: a run whose parameters lack one
# ran as its default does (before tensor parallelism was a parameter, every engine had one GPU).
ADDED_DEFAULTS = {"engine.tensor_parallel_size": 1, "bench_serve.per_user": 0, "steady_state.overload_s": None}


class CompareError(SlmstudyError):
    """The two folders cannot be compared at all (one line saying why)."""


class Params(StudyParams):
    """``a`` and ``b``: run folders (relative to the project root or absolute), or
    ``run:<notebook>`` for the folder that notebook's current parameters map to
    with this profile (what ``make study`` just produced); or both studies, compared
    notebook by notebook (``compare_study``): a folder of notebooks' run folders such
    as ``outputs/reference/h100``, or ``run:*`` for every notebook's current folder."""

    a: str = Field(min_length=1, max_length=500)
    b: str = Field(min_length=1, max_length=500)
    # Parameter keys (dotted, as a run's params.yaml nests them) the comparison is an
    # experiment on: they may differ, and the rows then say faster / slower / same for
    # B's value against A's, e.g. [engine.tensor_parallel_size] for TP=2 against TP=1.
    vary: list[str] = Field(default_factory=list, max_length=10)


def jobs(p: Params) -> list[Job]:
    return []  # reads two runs


EXPERIMENT = Experiment(NOTEBOOK, "Compare two runs", Params, jobs)


@dataclass
class Comparison:
    notebook: str
    a: Path
    b: Path
    differing: list[str]  # parameter keys that differ (shaping the metrics)
    hardware: tuple[str, str]
    rows: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # which code measured each side ("unknown" where not recorded): a path names a
    # folder as it is now, the commits say which measurement it held then
    commits: tuple[str, str] = ("unknown", "unknown")
    varied: list[str] = field(default_factory=list)  # the ``vary`` keys that differ: the experiment

    @property
    def comparable(self) -> bool:
        return not self.differing and self.hardware[0] == self.hardware[1]

    def counts(self) -> pd.Series:
        return self.rows["verdict"].value_counts() if not self.rows.empty else pd.Series(dtype=int)


# ------------------------------------------------------------------ checks
def _resolve(folder: str | Path) -> Path:
    path = Path(folder)
    return path if path.is_absolute() else paths.project_root() / path


def check_folder(folder: Path) -> tuple[str, RunView]:
    """The folder's notebook, or CompareError saying why it is not a complete run."""
    if not (folder / "params.yaml").is_file() or not (folder / "tables").is_dir():
        raise CompareError(f"{show(folder)} is not a run folder (it needs params.yaml and tables/)")
    view = RunView(folder)
    nb = (view.params_file() or {}).get("notebook")
    if nb not in COMPARABLE:
        raise CompareError(f"{show(folder)} is a run of {nb!r}; compare takes runs of {', '.join(COMPARABLE)}")
    missing = missing_configurations(nb, view)
    if missing:
        raise CompareError(f"{show(folder)} is an incomplete run: missing or failed {', '.join(missing)}")
    return nb, view


def missing_configurations(notebook: str, view: RunView) -> list[str]:
    """Configurations that failed or points that have no rows, from the folder's own records."""
    out = []
    cfg = view.table("configs")
    if cfg.empty:
        return ["every configuration (no configs table)"]
    out += [f"{r['config']} ({r.get('root_cause') or r['status']})" for _, r in cfg.iterrows()
            if r.get("status") not in ("ok", "partial")]
    p = (view.params_file() or {}).get("params", {})
    if notebook == "04_serving":
        return out
    expected = [q["name"] for q in p.get("points", [])] or [f"b{b}" for b in p.get("workload", {}).get("batch_sizes", [])]
    runs = view.table("runs")
    for (model, precision), _ in cfg[cfg["status"] == "ok"].groupby(["model", "precision"]):
        have = set(runs[(runs["model"] == model) & (runs["precision"] == precision)]["point"]) if not runs.empty else set()
        out += [f"{model} {precision} point {pt}" for pt in expected if pt not in have]
    return out


def _flat(view: RunView) -> dict[str, Any]:
    return pd.json_normalize((view.params_file() or {}).get("params", {}), sep=".").iloc[0].to_dict()


def differing_params(fa: dict[str, Any], fb: dict[str, Any], vary: Sequence[str] = ()) -> list[str]:
    """Keys of the two runs' parameters (``_flat``) that differ and shape what is
    measured (``vary``: keys the comparison is an experiment on, left out here)."""
    out = []
    for key in sorted(set(fa) | set(fb)):
        if any(key == ig or key.startswith(ig + ".") for ig in (*IGNORED_PARAMS, *vary)):
            continue
        va, vb = (f[key] if key in f else ADDED_DEFAULTS.get(key) for f in (fa, fb))
        if va != vb:
            out.append(f"{key} ({va!r} vs {vb!r})")
    return out


def varied_params(fa: dict[str, Any], fb: dict[str, Any], vary: Sequence[str]) -> list[str]:
    """The ``vary`` keys, with both runs' values; CompareError for a key neither run has."""
    unknown = [k for k in vary if k not in fa and k not in fb]
    if unknown:
        raise CompareError(f"vary: {', '.join(unknown)} is not a parameter of these runs; allowed: "
                           f"{', '.join(k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)) or 'none differ'}")
    return [f"{k} ({fa.get(k)!r} vs {fb.get(k)!r})" for k in vary if fa.get(k) != fb.get(k)]


def _reads_every_gpu(view: RunView, flat: dict[str, Any]) -> bool:
    """Whether each engine's trace read all the GPUs it spans (``telemetry_gpus``)."""
    ranks = int(flat.get("engine.tensor_parallel_size") or 1)
    cfg = view.table("configs")
    if cfg.empty or "telemetry_gpus" not in cfg or cfg["telemetry_gpus"].isna().any():
        return ranks == 1
    return bool((cfg["telemetry_gpus"] >= ranks).all())


def device(view: RunView) -> str:
    env = view.environment()
    return env.get("gpu_name") or f"CPU {env.get('cpu_model')}"


# ------------------------------------------------------------------- rows
def diff_ci(a: np.ndarray, b: np.ndarray, extra_sd: float = 0.0) -> tuple[float, float, float]:
    """(difference of means B - A, 95% CI low, high): Welch's interval, its variance
    widened by ``extra_sd`` squared (a run-to-run spread measured elsewhere)."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    d = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return d, float("nan"), float("nan")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb + 2 * extra_sd**2)
    dof = (va + vb) ** 2 / ((va**2 / (len(a) - 1)) + (vb**2 / (len(b) - 1))) if va + vb > 0 else 1e9
    half = float(st.t.ppf(0.975, dof) * se) if se > 0 else 0.0
    return d, d - half, d + half


def verdict(d: float, lo: float, hi: float, sense: str, n: tuple[int, int]) -> str:
    if min(n) < 2:
        return "same" if d == 0 else ("higher" if d > 0 else "lower") + " (one value per side: no spread)"
    if lo <= 0 <= hi:
        return "same"
    up = d > 0
    if sense == "higher":
        return "faster" if up else "slower"
    if sense == "lower":
        return "slower" if up else "faster"
    return "higher" if up else "lower"


def _side(values: np.ndarray) -> tuple[float, str, int]:
    x = values[np.isfinite(values)]
    if len(x) == 0:
        return float("nan"), "", 0
    if len(x) < 2:
        return float(x.mean()), "", len(x)
    half = float(st.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return float(x.mean()), f"[{x.mean() - half:.4g}, {x.mean() + half:.4g}]", len(x)


def process_spread(view: RunView) -> float | None:
    """Relative SD of batch-1 speed between fresh processes of one configuration,
    from the cross-check rounds (medians per round), when the run has two or more."""
    runs = view.table("runs")
    if runs.empty or "point" not in runs:
        return None
    x = runs[runs["point"] == "crosscheck_b1"]
    if x.empty:
        return None
    rel = []
    for _, g in x.groupby("model"):
        med = g.groupby("config")["output_tok_s"].median()
        if len(med) >= 2:
            rel.append(float(med.std(ddof=1) / med.mean()))
    return float(np.mean(rel)) if rel else None


def _rows(ta: pd.DataFrame, tb: pd.DataFrame, keys: list[str], metrics: dict[str, str], comparable: bool,
          why: str, spread: float | None) -> list[dict[str, Any]]:
    out = []
    if ta.empty or tb.empty:
        return out
    keys = [k for k in keys if k in ta and k in tb]
    for key, ga in ta.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        gb = tb
        for k, v in zip(keys, key):
            gb = gb[gb[k] == v]
        if gb.empty:
            continue
        for metric, sense in metrics.items():
            if metric not in ga or metric not in gb:
                continue
            va, vb = ga[metric].to_numpy(float), gb[metric].to_numpy(float)
            (ma, cia, na), (mb, cib, nb_) = _side(va), _side(vb)
            if na == 0 or nb_ == 0:
                continue
            # The process-to-process spread was measured at batch 1: only rows of that shape get it.
            batch1 = "batch" in ga and (ga["batch"] == 1).all()
            extra = spread * (ma + mb) / 2 if spread and metric == "output_tok_s" and batch1 else 0.0
            d, lo, hi = diff_ci(va, vb, extra)
            row = {**dict(zip(keys, key)), "metric": metric, "a_mean": ma, "a_ci95": cia, "a_n": na,
                   "b_mean": mb, "b_ci95": cib, "b_n": nb_, "ratio_b_over_a": mb / ma if ma else float("nan"),
                   "diff_ci95": f"[{lo:.4g}, {hi:.4g}]" if math.isfinite(lo) else "",
                   "spread": "repetitions and fresh-process rounds" if extra else "repetitions within one process",
                   "verdict": verdict(d, lo, hi, sense, (na, nb_)) if comparable else f"not comparable: {why}"}
            out.append(row)
    return out


def compare_views(nb: str, a: RunView, b: RunView, vary: Sequence[str] = ()) -> Comparison:
    fa, fb = _flat(a), _flat(b)
    differing = differing_params(fa, fb, vary)
    varied = varied_params(fa, fb, vary)
    hw = (device(a), device(b))
    why = "; ".join(([f"hardware ({hw[0]} vs {hw[1]})"] if hw[0] != hw[1] else []) + differing)
    comparable = not why
    spreads = [s for s in (process_spread(a), process_spread(b)) if s is not None]
    spread = max(spreads) if spreads else None
    notes = []
    run_metrics, level_metrics = RUN_METRICS, LEVEL_METRICS
    if not (_reads_every_gpu(a, fa) and _reads_every_gpu(b, fb)):
        # A trace of one GPU (or of the CPU) of a tensor-parallel engine: its energy and
        # activity would be one GPU's share, not the engine's.
        run_metrics = {k: v for k, v in RUN_METRICS.items() if k in ("output_tok_s", "req_per_min", "ttft_mean_s",
                                                                     "tpot_mean_s")}
        level_metrics = {k: v for k, v in LEVEL_METRICS.items() if k != "j_per_output_token"}
        notes.append("a tensor-parallel engine's energy and GPM activity are left out: its telemetry did not read "
                     "every GPU it spans; weights, KV cache and peak memory are per GPU (rank 0's)")
    if nb == "04_serving":
        points = pd.DataFrame(level_rows(a.table("levels"), b.table("levels"), a.table("requests"),
                                         b.table("requests"), level_metrics, comparable, why, verdict))
        note = client_note(points)
        if note:
            notes.append(note)
    else:
        ra, rb = a.table("runs"), b.table("runs")
        points = host_diagnosis(ra, rb, pd.DataFrame(_rows(ra, rb, ["model", "precision", "point"], run_metrics,
                                                           comparable, why, spread)))
        note = host_note(points)
        if note:
            notes.append(note)
    ca, cb = a.table("configs"), b.table("configs")
    if not ca.empty and "start" in ca and "start" in cb:
        ca, cb = ca.assign(start=ca["start"].replace({"any": "warm"})), cb.assign(start=cb["start"].replace({"any": "warm"}))
    configs = pd.DataFrame(_rows(ca, cb, ["model", "precision", "start"], CONFIG_METRICS, comparable, why, None))
    parts = [d for d in (points, configs) if not d.empty]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not df.empty and hw[0] != hw[1]:
        df = _with_prediction(df, a, b)
    if spread is not None:
        notes.append(f"run-to-run spread of fresh processes (batch-1 speed, cross-check rounds): "
                     f"{100 * spread:.1f}% relative SD, added to the batch-1 throughput rows")
    commits = tuple((v.environment().get("git_commit") or "unknown")[:12] for v in (a, b))
    return Comparison(nb, a.dir, b.dir, differing, hw, df, notes, commits, varied)


def _with_prediction(df: pd.DataFrame, a: RunView, b: RunView) -> pd.DataFrame:
    """The ratio the roofline model predicts for throughput rows from each machine's probe."""
    from .. import roofline as rl

    ha, hb = a.hardware(), b.hardware()
    pa = (a.params_file() or {}).get("params", {})
    w = pa.get("workload")
    if not (ha and hb and w):
        return df
    pred = []
    for _, r in df.iterrows():
        if r["metric"] != "output_tok_s" or not str(r.get("point", "")).startswith("b"):
            pred.append(float("nan"))
            continue
        batch = int(str(r["point"])[1:]) if str(r["point"])[1:].isdigit() else 1
        bounds = [rl.request_bound(r["model"], r["precision"], batch, w["input_len"], w["output_len"],
                                   rl.limits_for(h, r["precision"]))["bound_tok_s"] for h in (ha, hb)]
        pred.append(bounds[1] / bounds[0])
    df = df.assign(predicted_ratio=pred)
    return df.assign(prediction_error_pct=100 * (df["ratio_b_over_a"] / df["predicted_ratio"] - 1))


def compare_folders(a: str | Path, b: str | Path, vary: Sequence[str] = ()) -> Comparison:
    """Both folders checked (one clear error each), then compared (``vary``: the
    parameter keys the comparison is an experiment on)."""
    nba, va = check_folder(_resolve(a))
    nbb, vb = check_folder(_resolve(b))
    if nba != nbb:
        raise CompareError(f"{show(va.dir)} is a run of {nba} and {show(vb.dir)} of {nbb}: compare runs of one notebook")
    return compare_views(nba, va, vb, vary)


# ---------------------------------------------------------------- outputs
def summary(c: Comparison) -> pd.DataFrame:
    counts = c.counts()
    return pd.DataFrame([{"notebook": c.notebook, "A": show(c.a), "B": show(c.b), "device A": c.hardware[0],
                          "device B": c.hardware[1], "comparable": c.comparable,
                          "differing parameters": "; ".join(c.differing) or "none",
                          "varied (the experiment)": "; ".join(c.varied) or "none",
                          **{f"rows {k}": int(v) for k, v in counts.items()}}])


def sentence(c: Comparison) -> str:
    """The verdict of the whole comparison in one sentence."""
    if c.rows.empty:
        return "The two runs share no measured point."
    counts = c.counts()
    n = int(counts.sum())
    if not c.comparable:
        return (f"Not comparable as a reproduction ({'; '.join(c.differing) or 'different hardware'}); "
                f"{n} rows are shown side by side with their ratios.")
    same = int(counts.get("same", 0))
    rest = ", ".join(f"{int(v)} {k}" for k, v in counts.items() if k != "same")
    head = f"An experiment on {'; '.join(c.varied)} (B against A): " if c.varied else ""
    return head + f"{same} of {n} rows are the same within the measured spread" + (f"; {rest}." if rest else ".")


def render_text(c: Comparison) -> str:
    lines = [f"compare {c.notebook}: A = {show(c.a)} ({c.hardware[0]}), B = {show(c.b)} ({c.hardware[1]})",
             sentence(c), *c.notes]
    if not c.rows.empty:
        cols = [x for x in ("model", "precision", "point", "mode", "level", "start", "metric", "a_mean", "b_mean",
                            "ratio_b_over_a", "predicted_ratio", "verdict") if x in c.rows]
        with pd.option_context("display.width", 200, "display.max_rows", 400, "display.max_colwidth", 60):
            lines.append(c.rows[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return "\n".join(lines)


def write(c: Comparison, folder: Path) -> None:
    from ..atomic import write_json, write_table

    write_table(c.rows, folder / "comparison")
    write_json(folder / "comparison.json", {"notebook": c.notebook, "a": show(c.a), "b": show(c.b),
                                            "commits": list(c.commits), "hardware": list(c.hardware), "differing": c.differing,
                                            "varied": c.varied,
                                            "sentence": sentence(c), "notes": c.notes,
                                            "counts": {k: int(v) for k, v in c.counts().items()}})


def folder_of(spec: str, profile: str) -> Path:
    """A folder named in the parameters: a path, or ``run:<notebook>`` (the folder that
    notebook's parameters map to with this profile), with layers after ``+``:
    ``run:03_batch_scaling+params/03_batch_scaling/tp2_gpu.yaml``."""
    if spec.startswith("run:"):
        from ..results.run_folder import folder_for
        from .registry import resolve

        nb, *layers = spec[4:].split("+")
        return folder_for(resolve(nb, profile, [str(_resolve(f)) for f in layers] or None))
    return _resolve(spec)


@styled
def figure(study: Study[Params], c: Comparison, name: str = "compare_throughput") -> Any:
    """Throughput of B over A per point (1 = the same), with the roofline model's
    predicted ratio where the runs come from different machines."""
    import matplotlib.pyplot as plt

    from .. import figures

    rows = c.rows[c.rows["metric"].isin(["output_tok_s"])] if not c.rows.empty else c.rows
    fig, ax = plt.subplots(figsize=(11, 4))
    if rows.empty:
        ax.text(0.5, 0.5, "no throughput rows in common", ha="center", transform=ax.transAxes)
    else:
        label_col = "point" if "point" in rows else "level"
        for i, (model, g) in enumerate(rows.groupby("model", sort=False)):
            x = np.arange(len(g)) + i * (len(g) + 1)
            ax.bar(x, g["ratio_b_over_a"], color=f"C{i}", label=figures.model_name(model))
            if "predicted_ratio" in g and g["predicted_ratio"].notna().any():
                ax.plot(x, g["predicted_ratio"], "k_", markersize=18, label="roofline prediction" if i == 0 else None)
            ax.set_xticks(list(ax.get_xticks()) + list(x), minor=False)
            for xi, lab in zip(x, g[label_col]):
                ax.text(xi, 0.02, str(lab), rotation=90, ha="center", va="bottom", fontsize=7, color="white",
                        transform=ax.get_xaxis_transform())
        ax.set_xticks([])
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_ylabel("output tokens/s, B / A")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title(f"{c.notebook}: B = {show(c.b)} over A = {show(c.a)}", fontsize=9)
    fig.tight_layout()
    return figures.finish(fig, study, name, f"A: {c.hardware[0]} | B: {c.hardware[1]}")
