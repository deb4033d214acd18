"""Figures shared by the notebooks. Each returns the matplotlib Figure, saves it as
PNG and SVG in the run folder, and carries a caption naming the device, vLLM
version, weight source and precision."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import catalog
from .results.summaries import weights_gib

F = TypeVar("F", bound=Callable[..., Any])


def styled(fn: F) -> F:
    """Draw ``fn``'s figure in the study's style without changing matplotlib's
    global settings for whoever imports this module."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]

PHASE_COLOURS = {
    "engine_start": "#bbbbbb",
    "warmup": "#f2d7a0",
    "run": "#a8d5a2",
    "overhead": "#c9c1e6",
    "harness": "#e6c1d9",
    "frontend": "#d9c1e6",
    "bench_serve": "#c1d9e6",
    "guidellm": "#d9e6c1",
    "anatomy": "#e6d9c1",
    "load": "#a8d5a2",  # a serving load level
    "shutdown": "#dddddd",
}


def model_name(model: str) -> str:
    try:
        return catalog.model(model).display
    except Exception:
        return model


def finish(fig: Any, study: Any, name: str, caption: str) -> Any:
    """Caption, save as PNG and SVG, and close: the notebook shows the returned
    figure once (an open pyplot figure would be shown a second time)."""
    fig.text(0.5, -0.02, caption, ha="center", va="top", fontsize=8, color="#444444", wrap=True)
    study.folder.save_figure(fig, name)
    plt.close(fig)
    return fig


def batch_axis(ax: Any, values: Any, label: str = "batch") -> None:
    """A log-2 axis of batch sizes (or concurrencies) with the values themselves as ticks."""
    ax.set_xscale("log", base=2)
    ticks = sorted(set(values))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(label)


def without_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of engines started again only to repeat a measurement (cross-check
    rounds after the first, ``repeat_of`` in older runs) left out: they add nothing
    to per-engine pictures."""
    if "round" in df:
        df = df[df["round"].fillna(1) <= 1]
    return df[df["repeat_of"].isna()] if "repeat_of" in df else df


def legend_outside(owner: Any, handles: list[Any] | None = None, labels: list[str] | None = None,
                   title: str | None = None) -> Any:
    """A legend to the right of the axes (or the figure), clear of the data and of every label."""
    if handles is None:
        handles, labels = owner.get_legend_handles_labels()
    if not handles:
        return None
    kw = {"fontsize": 8, "frameon": False, "title": title}
    if hasattr(owner, "transAxes"):
        return owner.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, **kw)
    if owner.get_layout_engine() is not None and type(owner.get_layout_engine()).__name__ == "ConstrainedLayoutEngine":
        return owner.legend(handles, labels, loc="outside right upper", **kw)  # constrained layout makes room
    return owner.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.81, 0.95), **kw)


def _errorbar(ax: Any, df: pd.DataFrame, x: str, y: str, label: str, scale: float = 1.0) -> None:
    """Means with their 95% CI; every quantity here is non-negative, so a bar
    reaching below zero is clipped there rather than drawn into nonsense."""
    yerr = None
    if f"{y}_lo" in df and df[f"{y}_lo"].notna().any():
        low = np.minimum(df[y] - df[f"{y}_lo"], df[y]).clip(lower=0)
        yerr = np.vstack([low * scale, (df[f"{y}_hi"] - df[y]).clip(lower=0) * scale])
    ax.errorbar(df[x], df[y] * scale, yerr=yerr, marker="o", capsize=3, label=label)


@styled
def metric_grid(study: Any, summary: pd.DataFrame, panels: list[tuple[str, str, float]], name: str,
                hue: str = "model", x: str = "batch", title: str = "", precision: str | None = None,
                ncols: int = 2) -> Any:
    """One panel per (metric, axis label, scale), one line per ``hue`` value, 95% CI bars."""
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols + 2.5, 3.6 * nrows), squeeze=False)
    for ax, (metric, label, scale) in zip(axes.flat, panels):
        if metric not in summary:
            ax.set_visible(False)
            continue
        groups = dict(list(summary.groupby(hue, sort=False)))
        if hue == "precision":  # catalog order: fp32, bf16, fp16, int8, fp8
            groups = {k: groups[k] for k in catalog.precisions() if k in groups}
        for key, g in groups.items():
            text = model_name(key) if hue == "model" else catalog.precision(key).display if hue == "precision" else key
            _errorbar(ax, g.sort_values(x), x, metric, text, scale)
        batch_axis(ax, summary[x], x)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    legend_outside(fig, *axes.flat[0].get_legend_handles_labels())
    n = int(summary["n"].min()) if "n" in summary and len(summary) else 0
    return finish(fig, study, name, study.caption(precision, f"mean of {n} repetitions, bars: 95% CI"))


GPU_SERIES = [
    ("util_gpu_pct", "utilization.gpu (what nvidia-smi shows)", "black", "--"),
    ("gpm_sm_active_pct", "SM activity (GPM)", "tab:blue", "-"),
    ("gpm_sm_occupancy_pct", "SM occupancy (GPM)", "tab:cyan", "-"),
    ("gpm_tensor_active_pct", "tensor-core activity (GPM)", "tab:red", "-"),
    ("gpm_dram_bw_pct", "DRAM bandwidth (GPM)", "tab:green", "-"),
    ("cpu_steal_pct", "host CPU steal (time the hypervisor ran other guests)", "tab:purple", ":"),
]
CPU_SERIES = [
    ("cpu_pct", "machine CPU", "black", "--"),
    ("proc_cpu_pct", "engine process tree CPU (100 = one core)", "tab:blue", "-"),
    ("cpu_steal_pct", "host CPU steal (time the hypervisor ran other guests)", "tab:purple", ":"),
]
PHASE_NAMES = {"engine_start": "engine start", "warmup": "warm-up", "run": "measured runs",
               "overhead": "sampler on/off check", "harness": "streamed vs final-only check",
               "frontend": "AsyncLLM vs LLM check", "bench_serve": "vllm bench serve",
               "guidellm": "GuideLLM", "anatomy": "step anatomy (profiled)", "load": "load level", "shutdown": "shutdown"}
SMOOTH_S = 0.5  # the traces are 10-20 Hz: a half-second mean keeps every line readable


def _smooth(t: pd.DataFrame, col: str) -> pd.Series:
    dt = float(np.median(np.diff(t["t"]))) if len(t) > 2 else 0.1
    return t[col].rolling(max(1, int(round(SMOOTH_S / max(dt, 1e-3)))), min_periods=1, center=True).mean()


def _label_points(ax: Any, ph: pd.DataFrame, t0: float, span: float, own: set[str] | None) -> None:
    """Name each measured point (or load level) once, where its runs start, skipping
    names that would collide with the previous one."""
    key = "point" if "point" in ph and ph["point"].notna().any() else ("level" if "level" in ph else None)
    if key is None:
        return
    last = -1e9
    for value, g in ph[ph["name"].isin(["run", "load"])].groupby(key, sort=False):
        if own is not None and key == "point" and str(value) not in own:
            continue
        x = g["t0"].min() - t0
        if x - last < 0.04 * span:
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
        ax.text(x, 102, text, fontsize=7, va="bottom", rotation=0, clip_on=False)
        last = x


@styled
def utilization_traces(study: Any, configs: list[str] | None = None, name: str = "utilization_traces") -> Any:
    """Each engine's telemetry trace, its phases shaded and its points named: a panel
    of utilisation and, below it, a strip of power (GPU) or resident memory (CPU).

    On a GPU: ``utilization.gpu`` (the number nvidia-smi shows: the share of time
    *any* kernel ran) against GPM's SM activity, SM occupancy, tensor-core
    activity and DRAM bandwidth, which say how much of the chip works. Without a
    GPU: the machine's and the engine's CPU use. Lines are half-second means.
    """
    from matplotlib.patches import Patch

    tel = study.table("telemetry")
    phases = study.table("phases")
    runs = study.table("runs")
    own = set(runs["point"]) if not runs.empty and "point" in runs else None
    keep = without_repeats(study.table("configs")) if not study.table("configs").empty else None
    configs = configs or [c for c in dict.fromkeys(tel["config"]) if keep is None or c in set(keep["config"])] \
        if not tel.empty else []
    n = max(len(configs), 1)
    fig = plt.figure(figsize=(15, 3.6 * n), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(n, 1))
    handles: dict[str, Any] = {}
    bottom = None
    for sub, config in zip(subs, configs):
        ax, strip = sub.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        t = tel[tel["config"] == config].sort_values("t")
        ph = phases[phases["config"] == config] if not phases.empty else phases
        t0 = t["t"].min()
        span = max(float(t["t"].max() - t0), 1e-6)
        gpu = "util_gpu_pct" in t and t["util_gpu_pct"].notna().any()
        for col, label, colour, style in GPU_SERIES if gpu else CPU_SERIES:
            if col in t and t[col].notna().any():
                handles[label] = ax.plot(t["t"] - t0, _smooth(t, col), style, color=colour, lw=1.2)[0]
        for _, p in ph.iterrows():
            colour = PHASE_COLOURS.get(p["name"])
            if colour:
                for a in (ax, strip):
                    a.axvspan(p["t0"] - t0, p["t1"] - t0, color=colour, alpha=0.35, lw=0)
                handles.setdefault(PHASE_NAMES.get(p["name"], p["name"]), Patch(color=colour, alpha=0.35))
        _label_points(ax, ph, t0, span, own)
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        engine = config.split("__")
        prec = catalog.precision(engine[1]).display if len(engine) > 1 and engine[1] in catalog.precisions() else ""
        ax.set_title(f"{model_name(engine[0])} {prec}".strip(), fontsize=10, pad=12)
        second, unit = ("power_w", "power (W)") if gpu else ("proc_rss_mib", "RSS (MiB)")
        if second in t and t[second].notna().any():
            strip.plot(t["t"] - t0, t[second], color="tab:orange", lw=1)
        strip.set_ylabel(unit, fontsize=8)
        bottom = strip
    if bottom is not None:
        bottom.set_xlabel("seconds since the engine's telemetry started")
    legend_outside(fig, list(handles.values()), list(handles))
    return finish(fig, study, name, study.caption())


MEMORY_PARTS = [
    ("weights_gib", "weights", "#4c72b0"),
    ("activation_peak_gib", "activations (peak)", "#dd8452"),
    ("cudagraph_gib", "CUDA graphs", "#8172b3"),
    ("non_torch_gib", "non-torch (CUDA context, NCCL, ...)", "#937860"),
    ("kv_cache_gib", "KV cache", "#55a868"),
]


@styled
def memory_picture(study: Any, name: str = "memory") -> Any:
    """Where the device memory goes, per configuration: weights, activations, CUDA
    graphs, KV cache, the rest, and what is left free."""
    cfg = study.table("configs")
    cfg = without_repeats(cfg[cfg["status"] == "ok"]) if not cfg.empty else cfg
    if "start" in cfg:  # a cold start measures the start, not the memory: its warm twin is shown
        cfg = cfg[cfg["start"] != "cold"]
    fig, ax = plt.subplots(figsize=(12, 1.4 + 0.9 * max(len(cfg), 1)))
    labels = []
    for i, (_, row) in enumerate(cfg.iterrows()):
        left = 0.0
        for col, label, colour in MEMORY_PARTS:
            value = weights_gib(row) if col == "weights_gib" else row.get(col)
            if value is None or not np.isfinite(value) or value <= 0:
                continue
            ax.barh(i, value, left=left, color=colour, label=label if i == 0 else None)
            if value > 0.6:
                ax.text(left + value / 2, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white")
            left += value
        total = row.get("peak_device_mem_gib")
        if total is None or not np.isfinite(total):
            total = row.get("peak_proc_rss_gib")  # CPU engine: resident memory of its processes
        if total is not None and np.isfinite(total) and total > left:
            ax.barh(i, total - left, left=left, color="#cccccc", label="other (peak - parts)" if i == 0 else None)
            left = total
        device = row.get("device_total_gib")
        if device is not None and np.isfinite(device) and device > left:
            ax.barh(i, device - left, left=left, color="white", edgecolor="#999999", hatch="//",
                    label="free" if i == 0 else None)
        labels.append(f"{model_name(row['model'])}\n{catalog.precision(row['precision']).display}")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("GiB")
    legend_outside(ax)
    ax.set_title("Memory after engine start (the KV cache fills what gpu_memory_utilization allows)", fontsize=10)
    fig.tight_layout()
    return finish(fig, study, name, study.caption())
