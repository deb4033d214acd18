"""The step anatomy of a notebook's engines (03 per model, 02 per precision):
tables from the ``anatomy`` windows and their events, and the stacked-bar figure.
Pure analysis of recorded windows; the profiling happens in the engine worker
(``AnatomyCheck``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import analytic, catalog, roofline
from ..anatomy import bounds, classify, table
from ..figures import styled
from . import batch_scaling
from .common import hardware_limits

KEYS = ["model", "precision", "batch"]


def _measured_step_s(runs: pd.DataFrame, model: str, precision: str, batch: int) -> float:
    """The sweep's time per output token at this batch: the median over its runs
    (cross-check points excluded: they are the same shape, measured first)."""
    if runs.empty or "tpot_mean_s" not in runs:
        return float("nan")
    r = runs[(runs["model"] == model) & (runs["precision"] == precision) & (runs["batch"] == batch)]
    if "point" in r:
        r = r[~batch_scaling.is_crosscheck(r["point"])]
    return float(r["tpot_mean_s"].median()) if len(r) else float("nan")


def analyse(study: Any, tolerance_pct: float = 5.0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``summary``: one row per window (model, precision, batch) with its totals
    and sum check; ``parts``: one row per window and class, idle or GEMM role;
    ``events``: the windows' classified events (for the top-kernel tables)."""
    windows = study.table("anatomy")
    if windows.empty:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    events = study.table("anatomy_events")
    runs = study.table("runs")
    hw = hardware_limits(study)
    summaries, parts, classified = [], [], []
    for _, w in windows.sort_values(["model", "precision", "batch"]).iterrows():
        key = {k: w[k] for k in KEYS} | {"batch": int(w["batch"]), "config": w["config"]}
        base = {**key, "state": w.get("state"), "error": w.get("error")}
        ev = events[(events["config"] == w["config"]) & (events["batch"] == w["batch"])] if not events.empty else events
        if w.get("state") != "done" or ev.empty:
            summaries.append(base)
            continue
        cfg = catalog.model(w["model"]).hf_config()
        layers = analytic.Architecture.from_config(cfg).layers
        ev, note = table.classify_events(ev[["name", "memcpy", "start_us", "dur_us", "step"]], layers)
        steps, wall = int(w["window_steps"]), float(w["window_us"])
        # the window's mean context: prompt, the first token, the decode steps skipped, half the window
        context = int(w["input_len"]) + 1 + int(w["skip"]) + steps / 2
        lim = roofline.limits_for(hw, w["precision"])
        b = bounds.class_bounds(cfg, w["precision"], int(w["batch"]), context, lim)
        roof = roofline.step_bounds(w["model"], w["precision"], int(w["batch"]), context, lim)["t_step_s"]
        measured = _measured_step_s(runs, w["model"], w["precision"], int(w["batch"]))
        rows = table.window_rows(ev, steps, wall, b, measured)
        us = w.get("unprofiled_step_us")  # absent or None: the window's steps were not timed
        unprofiled = 1e-6 * float(us) if pd.notna(us) else np.nan
        summaries.append({**base, "device": w.get("device"), "context": context, "roles": note or "assigned",
                          **table.window_summary(rows, steps, wall, measured, roof, tolerance_pct, unprofiled)})
        parts.append(rows.assign(**key))
        classified.append(ev.assign(**key, steps=steps))
    summary = pd.DataFrame(summaries)
    return (summary, pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(),
            pd.concat(classified, ignore_index=True) if classified else pd.DataFrame())


def class_table(parts: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """ms per step per class and idle (columns), one row per window (``keys``: the
    window's columns shown, which must tell the windows apart; default all three).
    A class no window has (communication without tensor parallelism, activation
    quantisation in bf16) is left out, so the table stays narrow enough to show whole."""
    if parts.empty:
        return parts
    keys = keys or KEYS
    main = parts[parts["part"].isin([*classify.CLASSES, "idle"])]
    if main.groupby(keys).size().max() > len(classify.CLASSES) + 1:
        raise ValueError(f"the columns {keys} do not tell the anatomy windows apart")
    wide = main.pivot_table(index=keys, columns="part", values="ms_per_step", aggfunc="sum")
    return wide[[c for c in [*classify.CLASSES, "idle"] if c in wide and (c == "idle" or wide[c].any())]].reset_index()


def top_kernels(events: pd.DataFrame, n: int = 6) -> pd.DataFrame:
    """Per window, the ``n`` kernels (CPU: ops) taking most time per step."""
    if events.empty:
        return events
    out = []
    for key, g in events.groupby(KEYS, sort=True):
        top = table.top_events(g, int(g["steps"].iloc[0]), n=n)
        out.append(top.assign(**dict(zip(KEYS, key))))
    df = pd.concat(out, ignore_index=True)
    df["name"] = df["name"].str.slice(0, 90)
    return df[[*KEYS, "name", "cls", "calls_per_step", "ms_per_step"]]


COLOURS = {"gemm": "#4c72b0", "attention": "#dd8452", "elementwise": "#55a868", "act_quant": "#8172b3",
           "sampling": "#c44e52", "communication": "#da8bc3", "memcpy": "#937860", "other": "#8c8c8c",
           "idle": "#e5e5e5"}


@styled
def figure(study: Any, summary: pd.DataFrame, parts: pd.DataFrame, by: str = "model", name: str = "step_anatomy",
           caption_precision: str | None = None, order: list[str] | None = None) -> Any:
    """Stacked bars of ms per step per class (and idle) at each batch size, one
    panel per ``by`` (model or precision), the measured step (black tick) and the
    roofline bound (red tick) beside each bar. The idle segment is the measured
    step's (``host_share``): the kernels' time is the profiled window's, the idle
    time the profiler lengthens is left out."""
    import matplotlib.pyplot as plt

    from .. import figures

    if parts.empty:
        return None
    main = parts[parts["part"].isin([*classify.CLASSES, "idle"])]
    groups = _ordered(main[by], order)
    ncols = min(3, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax, g in zip(axes.flat, groups):
        d = main[main[by] == g]
        batches = sorted(d["batch"].unique())
        x = np.arange(len(batches))
        bottom = np.zeros(len(batches))
        s = summary[summary[by] == g].set_index("batch")
        for part in [*classify.CLASSES, "idle"]:
            vals = np.array([d[(d["batch"] == b) & (d["part"] == part)]["ms_per_step"].sum() for b in batches])
            if part == "idle":  # the measured step's idle where it can be told (host_share), not the profiled one
                vals = np.array([host_wait_ms(s.loc[b]) if b in s.index else v for b, v in zip(batches, vals)])
            if not vals.any():
                continue
            ax.bar(x, vals, bottom=bottom, color=COLOURS[part],
                   label=classify.LABELS.get(part, "device idle (waiting for the host; measured step less kernels)"),
                   edgecolor="white", lw=0.5)
            bottom += vals
        for xi, b in zip(x, batches):
            if b in s.index:
                ax.hlines(s.loc[b, "measured_step_ms"], xi - 0.45, xi + 0.45, color="black", lw=1.5)
                ax.hlines(s.loc[b, "roofline_bound_ms"], xi - 0.45, xi + 0.45, color="#c00000", lw=1.5, linestyles="--")
        ax.set_xticks(x, [str(b) for b in batches])
        ax.set_xlabel("batch")
        ax.set_ylabel("ms per decode step")
        ax.set_title(figures.model_name(g) if by == "model" else catalog.precision(g).display)
    handles, labels = axes[0][0].get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], color="black", lw=1.5), Line2D([], [], color="#c00000", lw=1.5, ls="--")]
    labels += ["measured step (sweep, unprofiled)", "roofline bound"]
    figures.legend_outside(axes[0][ncols - 1], handles, labels)
    fig.suptitle("Where a decode step's time goes")
    fig.tight_layout()
    return figures.finish(fig, study, name, study.caption(caption_precision))


PART_WORDS = {"gemm": "the GEMMs", "attention": "attention", "elementwise": "norms, activations and rotary",
              "communication": "communication between ranks",
              "act_quant": "activation quantisation", "sampling": "sampling", "memcpy": "memory copies",
              "other": "unclassified kernels", "idle": "the device waiting for the host"}
SINGULAR = {"attention", "act_quant", "sampling"}


def _take(part: str) -> str:
    return "takes" if part in SINGULAR else "take"


# Rule for what limits a step (written here and quoted by the notebooks):
HOST_BOUND_IDLE = 0.30  # the device idles 30% of the step or more: the host sets the pace
KERNEL_SLOW = 2.0  # the kernels take 2x their own bound or more: the kernels are the gap


def host_share(s: pd.Series) -> float:
    """The device's idle share of the measured (unprofiled) step: the measured step
    less the kernels' time (``host_share``), where the kernels fit inside it; else the
    profiled window's idle share. The profiled idle itself is not used where the
    estimate exists: the profiler's own host work lengthens a profiled step (H100:
    12-97%), all of it idle (``table.window_summary``)."""
    h = s.get("host_share")
    return float(h) if h is not None and h == h else float(s["idle_share"])


def host_wait_ms(s: pd.Series) -> float:
    """ms per measured step the device waits for the host (``host_share`` of it)."""
    return host_share(s) * float(s["measured_step_ms"])


def limit_of(s: pd.Series) -> str:
    """What limits one window's step, by the rule above: the host when the device
    idles for HOST_BOUND_IDLE of the measured step or more (``host_share``); else the
    kernels, when they take KERNEL_SLOW x their bound or more; else the hardware
    (kernels near their bound)."""
    if host_share(s) >= HOST_BOUND_IDLE:
        return "host-bound"
    if s["classes_ms"] >= KERNEL_SLOW * s["class_bounds_ms"]:
        return "kernel-bound"
    return "near the hardware bound"


def verdicts(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with each window's limit (``limit_of``)."""
    if summary.empty or "idle_share" not in summary:
        return summary
    ok = summary["idle_share"].notna()
    out = summary.copy()
    out.loc[ok, "limit"] = [limit_of(s) for _, s in out[ok].iterrows()]
    return out


def _ordered(values: pd.Series, order: list[str] | None) -> list[str]:
    """The distinct values, in ``order`` where it names them (a notebook's parameters), then the rest."""
    present = list(dict.fromkeys(values))
    first = [v for v in (order or []) if v in present]
    return first + [v for v in present if v not in first]


def _idle_words(r: pd.Series) -> str:
    """Where the idle share comes from, in words."""
    h = r.get("host_ms")
    if h is not None and h == h:
        return (f"{h:.2f} ms: the measured step less the kernels' {r['classes_ms']:.2f} ms; profiled, the "
                f"step idles {r['idle_ms']:.2f} ms, the profiler's own cost {r['profiler_cost_pct']:+.0f}%"
                + _basis_words(r))
    return f"{r['idle_ms']:.2f} ms in the profiled window: its kernels take longer than the measured step"


def _basis_words(r: pd.Series) -> str:
    """What the profiler's cost was measured against."""
    if r.get("profiler_cost_basis") == "unprofiled steps":
        return (f" against the same batch's unprofiled steps ({r['unprofiled_step_ms']:.2f} ms; "
                f"{r['window_vs_sweep_pct']:+.0f}% against the sweep's)")
    return " against the sweep's step (this window's batch was not timed apart)"


def explain(summary: pd.DataFrame, parts: pd.DataFrame, by: str = "model", order: list[str] | None = None) -> str:
    """Markdown: per ``by`` (model or precision), what limits the smallest and the
    largest batch and where the time goes; then, per batch, why one is faster."""
    s = verdicts(summary)
    if s.empty or "limit" not in s:
        return "No step anatomy in this run (its parameters set `anatomy: null`)."
    s = s[s["limit"].notna()]
    main = parts[parts["part"].isin([*classify.CLASSES, "idle"])]
    lines = []

    def name(g: str) -> str:
        from .. import figures
        return figures.model_name(g) if by == "model" else catalog.precision(g).display

    for g in _ordered(s[by], order):
        rows = s[s[by] == g]
        for b in sorted({rows["batch"].min(), rows["batch"].max()}):
            r = rows[rows["batch"] == b].iloc[0]
            p = main[(main[by] == g) & (main["batch"] == b)].set_index("part")["ms_per_step"]
            top = p.drop("idle", errors="ignore").idxmax()
            lines.append(
                f"* **{name(g)}, batch {b}: {r['limit']}.** A step takes {r['measured_step_ms']:.2f} ms "
                f"(bound {r['roofline_bound_ms']:.2f} ms: {100 * r['achieved_fraction']:.0f}% achieved). "
                f"The device idles, waiting for the host, {100 * host_share(r):.0f}% of it "
                f"({_idle_words(r)}); of the kernels, {PART_WORDS[top]} {_take(top)} most "
                f"({p[top]:.2f} ms, {100 * p[top] / r['measured_step_ms']:.0f}%); all kernels take "
                f"{r['classes_ms']:.2f} ms against their own bounds' {r['class_bounds_ms']:.2f} ms "
                f"({r['classes_ms'] / r['class_bounds_ms']:.1f}x). Sum check: classes + idle "
                f"{r['sum_ms']:.2f} ms vs {r['measured_step_ms']:.2f} ms measured ({r['sum_diff_pct']:+.1f}%, "
                f"{r['sum_check']}).")
    if s[by].nunique() > 1:
        for b in sorted(s["batch"].unique()):
            at = s[s["batch"] == b].set_index(by)
            if len(at) < 2:
                continue
            fast, slow = at["measured_step_ms"].idxmin(), at["measured_step_ms"].idxmax()
            # idle as in the measured steps (host_share), so the parts add up to their difference
            pf = main[(main[by] == fast) & (main["batch"] == b)].set_index("part")["ms_per_step"].copy()
            ps = main[(main[by] == slow) & (main["batch"] == b)].set_index("part")["ms_per_step"].copy()
            pf["idle"], ps["idle"] = host_wait_ms(at.loc[fast]), host_wait_ms(at.loc[slow])
            diff = (ps - pf).fillna(0)
            where = diff.idxmax()
            lines.append(
                f"* **Batch {b}:** {name(fast)} steps in {at.loc[fast, 'measured_step_ms']:.2f} ms, "
                f"{name(slow)} in {at.loc[slow, 'measured_step_ms']:.2f} ms; most of the difference is "
                f"{PART_WORDS[where]} ({diff[where]:+.2f} ms of {diff.sum():+.2f} ms).")
    return "\n".join(lines)
