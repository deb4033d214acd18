"""What limited each serving load level, read from three clocks lined up: the
client's requests, the server's own account (vLLM's ``/metrics``) and the
device/host trace.

A level's latency can grow for different reasons that call for different fixes:
requests wait for a scheduler slot (more ``max_num_seqs``), for KV-cache memory
(a smaller context, a larger GPU), for the HTTP front end (more API server
processes), for the device (a faster GPU, lower precision), for the engine's
Python (a faster CPU), or the load generator itself sets the pace (a result about the harness, not the
server). ``level_bound`` applies one written rule to a level's row; ``RULE`` is
the same rule in words for the notebook.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..figures import styled
from .base import Study


@dataclass(frozen=True)
class Thresholds:
    kv_full: float = 0.90  # KV cache share used at some read
    queue_share: float = 0.5  # queue time / mean TTFT
    queue_waiting: float = 1.0  # mean requests waiting
    client_busy: float = 0.9  # load generator CPU-seconds per second
    offered_min: float = 0.9  # mean requests the client had outstanding
    engine_share: float = 0.5  # (running + waiting in the engine) / outstanding at the client
    gpu_busy_pct: float = 90.0  # utilization.gpu
    host_busy_pct: float = 90.0  # the server's process tree, % of one core
    cpu_busy_pct: float = 90.0  # the machine's CPUs (the CPU engine)


TH = Thresholds()

RULE = f"""Mean counts below are time averages over the level by Little's law (the time all its requests spent in a
state, divided by the level's duration): exact however short the level, unlike a few reads of a gauge.
First match wins, per load level:

1. **KV cache**: any preemption, or the KV cache at least {TH.kv_full:.0%} full at some read: requests waited for memory.
2. **queue**: on average at least {TH.queue_waiting:g} request waiting in the engine, and requests spent at least
   {TH.queue_share:.0%} of their mean time to first token queued: they waited for a scheduler slot.
3. **client**: the load generator used at least {TH.client_busy:g} CPU-seconds per second: a saturated client set
   the pace, and the level says more about the harness than about the server.
4. **arrivals**: the client had fewer than {TH.offered_min:g} requests outstanding on average: the offered load, not
   the server, set the pace.
5. **front end**: requests running or waiting in the engine were fewer than {TH.engine_share:.0%} of those outstanding
   at the client: most of a request's time in the server went to its HTTP front end (chat template, tokenising,
   detokenising, streaming), not to the engine.
6. On a GPU: **GPU** when `utilization.gpu` averaged at least {TH.gpu_busy_pct:g}% (a kernel ran nearly all the
   time); otherwise **host** when the server's processes used at least {TH.host_busy_pct:g}% of a core (the GPU
   waited for Python); otherwise **unclear**. On the CPU engine there is no device apart from the host: **CPU** when
   the machine's cores were at least {TH.cpu_busy_pct:g}% busy, otherwise **unclear**.
"""


def _num(row: Mapping[str, Any], key: str) -> float:
    v = row.get(key)
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def level_bound(row: Mapping[str, Any], th: Thresholds = TH) -> tuple[str, str]:
    """(bound, why) for one level row of the ``levels`` table, by ``RULE``.

    Missing numbers never satisfy a test (NaN comparisons are false), so a level
    without server metrics can still be judged by the later steps."""
    def n(key: str) -> float:
        return _num(row, key)

    preempt, kv = n("srv_preemptions_delta"), n("srv_kv_cache_usage_max")
    if preempt > 0 or kv >= th.kv_full:
        return "KV cache", f"{preempt:g} preemptions, KV cache up to {kv:.0%} full"
    waiting, queue, ttft = n("engine_waiting_avg"), n("srv_queue_time_mean_s"), n("ttft_mean_s")
    if waiting >= th.queue_waiting and queue >= th.queue_share * ttft:
        return "queue", (f"{waiting:.1f} requests waiting on average; {1000 * queue:.0f} of "
                         f"{1000 * ttft:.0f} ms to first token spent queued")
    client = n("client_cpu_s") / n("duration_s")
    if client >= th.client_busy:
        return "client", f"the load generator used {client:.2f} CPU-s per second"
    offered, in_engine = n("client_in_flight_avg"), n("engine_running_avg") + n("engine_waiting_avg")
    if offered < th.offered_min:
        return "arrivals", f"{offered:.2f} requests outstanding at the client on average"
    if in_engine < th.engine_share * offered:
        return "front end", (f"{offered:.2f} requests outstanding at the client, {in_engine:.2f} of them in the "
                             "engine on average")
    gpu, host, cpu = n("util_gpu_pct_mean"), n("proc_cpu_pct_mean"), n("cpu_pct_mean")
    if not math.isnan(gpu):  # a GPU trace
        if gpu >= th.gpu_busy_pct:
            return "GPU", f"utilization.gpu {gpu:.0f}%"
        if host >= th.host_busy_pct:
            return "host", f"utilization.gpu {gpu:.0f}% while the server's processes used {host:.0f}% of a core"
        return "unclear", f"utilization.gpu {gpu:.0f}%, server processes {host:.0f}% of a core"
    if cpu >= th.cpu_busy_pct:
        return "CPU", f"the machine's cores {cpu:.0f}% busy"
    return "unclear", "no host trace" if math.isnan(cpu) else f"the machine's cores {cpu:.0f}% busy"


def bounds(levels: pd.DataFrame, th: Thresholds = TH) -> pd.DataFrame:
    """One row per load level: what bound it and the numbers that say so."""
    if levels.empty:
        return pd.DataFrame(columns=["model", "mode", "level", "bound", "why"])
    verdicts = [level_bound(r, th) for r in levels.to_dict(orient="records")]
    out = levels[["model", "mode", "level"]].copy()
    out["bound"] = [v[0] for v in verdicts]
    out["why"] = [v[1] for v in verdicts]
    keep = [c for c in ("client_in_flight_avg", "engine_running_avg", "engine_waiting_avg", "srv_queue_time_mean_s",
                        "ttft_mean_s", "srv_kv_cache_usage_max", "srv_tokens_per_step", "srv_step_rate_hz")
            if c in levels]
    return pd.concat([out, levels[keep]], axis=1)


def token_check(levels: pd.DataFrame) -> pd.DataFrame:
    """Per level, the client's and the server's counts of the same work: output
    tokens and finished requests. Both sides count exactly, and the server's
    counters were read with nothing in flight, so they must be equal; a
    difference means the client miscounts, requests leaked across levels, or the
    edges were read at the wrong time."""
    need = {"output_tokens", "completed", "srv_generation_tokens_delta", "srv_requests_finished_delta"}
    if levels.empty or not need <= set(levels):
        return pd.DataFrame(columns=["model", "mode", "level", "agrees"])
    out = levels[["model", "mode", "level", "completed", "srv_requests_finished_delta", "output_tokens",
                  "srv_generation_tokens_delta"]].copy()
    out["agrees"] = ((out["output_tokens"] == out["srv_generation_tokens_delta"])
                     & (out["completed"] == out["srv_requests_finished_delta"]))
    return out


def token_verdict(check: pd.DataFrame) -> str:
    if check.empty:
        return "the server's counters were not read (server_metrics off, or an older run)"
    bad = check[~check["agrees"]]
    if bad.empty:
        return (f"client and server agree on every level: {int(check['output_tokens'].sum()):,} output tokens and "
                f"{int(check['completed'].sum())} requests counted by both")
    first = bad.iloc[0]
    return (f"client and server disagree on {len(bad)} of {len(check)} levels, e.g. {first['model']} "
            f"{first['mode']} {first['level']:g}: client {first['output_tokens']:.0f} tokens / "
            f"{first['completed']:.0f} requests, server {first['srv_generation_tokens_delta']:.0f} / "
            f"{first['srv_requests_finished_delta']:.0f}")


def read_bias(levels: pd.DataFrame) -> pd.DataFrame:
    """Per level, the running gauge as the periodic reads saw it against the exact
    time average from the counters. Reads go through the server's own front end
    and need a free core: on a saturated host they can land mostly in the
    engine's pauses, and then the gauge pictures (not the verdicts, which use the
    counters) understate the load."""
    need = {"srv_running_mean", "engine_running_avg", "srv_scrapes"}
    if levels.empty or not need <= set(levels):
        return pd.DataFrame(columns=["model", "mode", "level", "reads", "running, reads", "running, average"])
    out = levels[["model", "mode", "level"]].copy()
    out["reads"] = levels["srv_scrapes"]
    out["running, reads"] = levels["srv_running_mean"]
    out["running, average"] = levels["engine_running_avg"]
    out["reads - average"] = out["running, reads"] - out["running, average"]
    return out


def read_bias_verdict(bias: pd.DataFrame) -> str:
    b = bias.dropna(subset=["reads - average"]) if not bias.empty else bias
    if b.empty:
        return "no level had both gauge reads and counters"
    w = b["reads"].clip(lower=1)
    mean_reads = float((b["running, reads"] * w).sum() / w.sum())
    mean_avg = float((b["running, average"] * w).sum() / w.sum())
    worst = b.loc[b["reads - average"].abs().idxmax()]
    return (f"over {int(b['reads'].sum())} reads in {len(b)} levels the running gauge read {mean_reads:.2f} requests on "
            f"average where the counters say {mean_avg:.2f}; the largest gap is {worst['reads - average']:+.2f} "
            f"({worst['model']}, {worst['mode']} {worst['level']:g})")


def in_flight(requests: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """Requests the client had sent and not yet seen end, at each time of ``grid``
    (wall clock): a request counts on [t_send, t_end)."""
    if requests.empty:
        return np.zeros(len(grid))
    sent = np.sort(requests["t_send"].to_numpy(dtype=float))
    ended = np.sort(requests["t_end"].to_numpy(dtype=float))
    return (np.searchsorted(sent, grid, side="right") - np.searchsorted(ended, grid, side="right")).astype(float)


@styled
def figure_timelines(study: Study[Any], mode: str = "concurrency") -> Any:
    """One column per load level of ``mode``, one row of columns per model: requests
    in flight as the client saw them against the server's running and waiting
    counts, the KV cache's use, and what the device and host did, on one clock."""
    import matplotlib.pyplot as plt

    from .. import figures

    levels, metrics = study.table("levels"), study.table("server_metrics")
    requests, tel = study.table("requests"), study.table("telemetry")
    levels = levels[levels["mode"] == mode] if not levels.empty else levels
    if levels.empty:
        return None  # no level of this mode was measured
    models = list(dict.fromkeys(levels["model"]))
    values = sorted(set(levels["level"]))
    fig = plt.figure(figsize=(max(15, 2.6 * len(values)), 5.2 * len(models)), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(len(models), 1))
    handles: dict[str, Any] = {}
    for sub, model in zip(subs, models):
        axes = sub.subplots(3, len(values), sharex="col", squeeze=False,
                            gridspec_kw={"height_ratios": [2, 1, 1.3]})
        for j, value in enumerate(values):
            lv = levels[(levels["model"] == model) & (levels["level"] == value)]
            if lv.empty:
                continue
            _timeline(axes[:, j], lv.iloc[0], _rows(metrics, model, mode, value),
                      _rows(requests, model, mode, value), _rows(tel, model, mode, value), handles)
            axes[0, j].set_title(f"{value:g} {'users' if mode == 'concurrency' else 'req/s'}", fontsize=9)
            axes[-1, j].set_xlabel("s into the level", fontsize=8)
        for ax, label in zip(axes[:, 0], ("requests", "KV cache used", "busy (%)")):
            ax.set_ylabel(label, fontsize=8)
        sub.suptitle(figures.model_name(model), fontsize=10)
    figures.legend_outside(fig, list(handles.values()), list(handles))
    title = "closed loop" if mode == "concurrency" else "Poisson arrivals"
    return figures.finish(fig, study, f"serving_timeline_{mode}",
                          study.caption(study.params.precision, extra=f"{title}; server read every "
                                        f"{study.params.telemetry.interval_ms} ms; dashed: the level's time averages "
                                        "from the server's counters"))


def _rows(df: pd.DataFrame, model: str, mode: str, level: float) -> pd.DataFrame:
    if df.empty or "level" not in df:
        return df.iloc[0:0]
    return df[(df["model"] == model) & (df["mode"] == mode) & (df["level"] == level)]


def _timeline(axes: Any, level: pd.Series, metrics: pd.DataFrame, requests: pd.DataFrame, tel: pd.DataFrame,
              handles: dict[str, Any]) -> None:
    top, kv, busy = axes
    t0, t1 = float(level["t0"]), float(level["t1"])
    grid = np.linspace(t0, t1, 400)
    # A short level (the CPU profile's) holds only a few reads: show each read as a point.
    dots = "o" if len(metrics) < 20 else None
    if not requests.empty and {"t_send", "t_end"} <= set(requests):
        handles["outstanding (client)"] = top.step(grid - t0, in_flight(requests, grid), where="post",
                                                   color="black", lw=1.0)[0]
    for col, label, colour in (("srv_running", "running (server reads)", "tab:blue"),
                               ("srv_waiting", "waiting (server reads)", "tab:red")):
        if col in metrics and metrics[col].notna().any():
            handles[label] = top.step(metrics["t"] - t0, metrics[col], where="post", color=colour, lw=1.0,
                                      marker=dots, ms=3)[0]
    # the level's exact time averages (Little's law), whatever the reads caught
    for col, label, colour in (("client_in_flight_avg", "outstanding, average", "black"),
                               ("engine_running_avg", "running in the engine, average", "tab:blue")):
        value = level.get(col)
        if value is not None and value == value:
            handles[label] = top.axhline(value, color=colour, ls="--", lw=0.9)
    top.set_ylim(bottom=0)
    if "srv_kv_cache_usage" in metrics and metrics["srv_kv_cache_usage"].notna().any():
        handles["KV cache used"] = kv.plot(metrics["t"] - t0, metrics["srv_kv_cache_usage"], color="tab:green",
                                           marker=dots, ms=3)[0]
    kv.set_ylim(0, 1.05)
    gpu = "util_gpu_pct" in tel and tel["util_gpu_pct"].notna().any()
    series = ((("util_gpu_pct", "utilization.gpu"), ("gpm_sm_active_pct", "SM activity")) if gpu else
              (("cpu_pct", "machine CPU"),)) + (("proc_cpu_pct", "server processes (% of a core)"),)
    for (col, label), colour in zip(series, ("tab:purple", "tab:orange", "tab:gray")):
        if col in tel and tel[col].notna().any():
            handles[label] = busy.plot(tel["t"] - t0, tel[col], color=colour, lw=1.0,
                                       marker="o" if len(tel) < 20 else None, ms=3)[0]
    busy.set_ylim(bottom=0)
    for ax in axes:
        ax.set_xlim(0, max(t1 - t0, 1e-3))
        ax.tick_params(labelsize=7)
