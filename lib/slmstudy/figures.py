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
    """Rows of engines started again only to repeat a measurement (``repeat_of``
    set) left out: they add nothing to per-engine pictures."""
    return df[df["repeat_of"].isna()] if "repeat_of" in df else df


def _errorbar(ax: Any, df: pd.DataFrame, x: str, y: str, label: str, scale: float = 1.0) -> None:
    yerr = None
    if f"{y}_lo" in df and df[f"{y}_lo"].notna().any():
        yerr = np.vstack([(df[y] - df[f"{y}_lo"]) * scale, (df[f"{y}_hi"] - df[y]) * scale])
    ax.errorbar(df[x], df[y] * scale, yerr=yerr, marker="o", capsize=3, label=label)


@styled
def metric_grid(study: Any, summary: pd.DataFrame, panels: list[tuple[str, str, float]], name: str,
                hue: str = "model", x: str = "batch", title: str = "", precision: str | None = None,
                ncols: int = 2) -> Any:
    """One panel per (metric, axis label, scale), one line per ``hue`` value, 95% CI bars."""
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 3.8 * nrows), squeeze=False)
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
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    n = int(summary["n"].min()) if "n" in summary and len(summary) else 0
    return finish(fig, study, name, study.caption(precision, f"mean of {n} repetitions, bars: 95% CI"))


GPU_SERIES = [
    ("util_gpu_pct", "utilization.gpu (what nvidia-smi shows)", "black", "--"),
    ("gpm_sm_active_pct", "SM activity (GPM)", "tab:blue", "-"),
    ("gpm_sm_occupancy_pct", "SM occupancy (GPM)", "tab:cyan", "-"),
    ("gpm_tensor_active_pct", "tensor-core activity (GPM)", "tab:red", "-"),
    ("gpm_dram_bw_pct", "DRAM bandwidth (GPM)", "tab:green", "-"),
    ("cpu_steal_pct", "host CPU steal % (time the hypervisor ran other guests)", "tab:purple", ":"),
]
CPU_SERIES = [
    ("cpu_pct", "machine CPU %", "black", "--"),
    ("proc_cpu_pct", "engine process tree CPU % (100 = one core)", "tab:blue", "-"),
    ("cpu_steal_pct", "host CPU steal % (time the hypervisor ran other guests)", "tab:purple", ":"),
]


@styled
def utilization_traces(study: Any, configs: list[str] | None = None, name: str = "utilization_traces") -> Any:
    """Each configuration's telemetry trace with its phases shaded, one panel each.

    On a GPU: ``utilization.gpu`` (the number nvidia-smi shows: the share of time
    *any* kernel ran) against GPM's SM activity, SM occupancy, tensor-core
    activity and DRAM bandwidth, which say how much of the chip works; power on
    the right axis. Without a GPU: the machine's and the engine's CPU use.
    """
    tel = study.table("telemetry")
    phases = study.table("phases")
    configs = configs or (list(dict.fromkeys(without_repeats(tel)["config"])) if not tel.empty else [])
    fig, axes = plt.subplots(max(len(configs), 1), 1, figsize=(13, 3.6 * max(len(configs), 1)), squeeze=False)
    for ax, config in zip(axes[:, 0], configs):
        t = tel[tel["config"] == config]
        ph = phases[phases["config"] == config] if not phases.empty else phases
        t0 = t["t"].min()
        gpu = "util_gpu_pct" in t and t["util_gpu_pct"].notna().any()
        for col, label, colour, style in GPU_SERIES if gpu else CPU_SERIES:
            if col in t and t[col].notna().any():
                ax.plot(t["t"] - t0, t[col], style, color=colour, label=label, lw=1)
        power = "power_w" if gpu else "proc_rss_mib"
        if power in t and t[power].notna().any():
            right = ax.twinx()
            right.plot(t["t"] - t0, t[power], color="tab:orange", lw=0.8, alpha=0.8)
            right.set_ylabel("power (W)" if gpu else "engine RSS (MiB)", color="tab:orange")
            right.grid(False)
        for _, p in ph.iterrows():
            colour = PHASE_COLOURS.get(p["name"])
            if colour:
                ax.axvspan(p["t0"] - t0, p["t1"] - t0, color=colour, alpha=0.35, lw=0)
        if "point" in ph:
            for point, g in ph[ph["name"] == "run"].groupby("point", sort=False):
                ax.text(g["t0"].min() - t0, 101, str(point), fontsize=7, va="bottom")
        ax.set_ylim(0, 112)
        ax.set_ylabel("%")
        model, prec = (config.split("__") + [None])[:2]
        ax.set_title(f"{model_name(model)} ({catalog.precision(prec).display if prec else ''})", fontsize=10)
        ax.legend(loc="upper left", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("seconds since telemetry started "
                           "(shaded: grey engine start, sand warm-up, green measured runs, lilac overhead check)")
    fig.tight_layout()
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
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.9 * max(len(cfg), 1)))
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
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, fontsize=8)
    ax.set_title("Device memory after engine start (KV cache fills what gpu_memory_utilization allows)")
    fig.tight_layout()
    return finish(fig, study, name, study.caption())
