"""What our harness costs: streamed, token-timed runs against final-output-only
runs of the same batch inside one engine (ABBA pairs), read two ways.

* **Whole run:** the slowdown of throughput per pair, ``(final - streamed) / final``.
  It holds everything, but also the host's run-to-run spread (10-30% on the lent
  H100), which 6 pairs cannot shrink to the 1% target.
* **Delivery:** each run's wall time split on the engine core's own clock
  (``engine.core_clock``) into the core's part (submit to the step that made the
  last token) and the lag after it (the core's send, vLLM's output processing, our
  per-token work). Streaming can cost throughput through this lag, measured in
  milliseconds inside every run, or by slowing the core itself, which runs in its
  own process: the core's part is compared between modes too, and carries the
  host's spread like the whole run. The delivery cost per pair is
  ``(lag streamed - lag final) / wall final``: what streaming adds after the core's
  last step, as a share of the run.

Pure functions of the ``harness`` table (one row per run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stats


def _verdict(lo: float, hi: float, n: int, target_pct: float) -> str:
    if hi < target_pct:
        return f"under {target_pct:g}%"
    if lo > target_pct:
        return f"over {target_pct:g}%"
    return f"not settled at {target_pct:g}% by {n} pairs"


def paired(g: pd.DataFrame, value: str, modes: tuple[str, ...] = ("stream", "final")) -> pd.DataFrame:
    """Pairs (index) by mode (columns ``modes``) of one value; pairs missing a mode dropped."""
    if value not in g:
        return pd.DataFrame(columns=list(modes))
    wide = g.pivot_table(index="pair", columns="mode", values=value)
    if not set(modes) <= set(wide.columns):
        return pd.DataFrame(columns=list(modes))
    return wide[list(modes)].dropna()


def _delivery(g: pd.DataFrame, target_pct: float) -> dict[str, object]:
    """The delivery columns of one model and batch (NaN where the runs carry no core clock)."""
    lag, wall, core = paired(g, "lag_s"), paired(g, "done_wall_s"), paired(g, "core_wall_s")
    cpu = paired(g, "main_cpu_s")
    pairs = lag.index.intersection(wall.index).intersection(core.index)
    if not len(pairs):
        return {"delivery_verdict": "not measured: no core clock in these runs"}
    lag, wall, core = lag.loc[pairs], wall.loc[pairs], core.loc[pairs]
    cost = 100 * (lag["stream"] - lag["final"]) / wall["final"]
    m, lo, hi, n = stats.mean_ci(cost)
    # the core's own speed: its part of each run, streamed against final outputs
    core_slow = 100 * (core["stream"] - core["final"]) / core["stream"]
    cm, clo, chi, _ = stats.mean_ci(core_slow)
    out: dict[str, object] = {
        "lag_stream_ms": 1e3 * float(lag["stream"].median()), "lag_final_ms": 1e3 * float(lag["final"].median()),
        "delivery_cost_pct": m, "delivery_ci95": f"[{lo:.3f}, {hi:.3f}]", "delivery_ci_lo": lo,
        "delivery_ci_hi": hi, "delivery_verdict": _verdict(lo, hi, n, target_pct),
        "core_slowdown_pct": cm, "core_ci95": f"[{clo:.2f}, {chi:.2f}]",
    }
    if not cpu.empty:
        both = cpu.index.intersection(pairs)
        busy = 100 * cpu.loc[both].div(wall.loc[both])
        out["main_busy_stream_pct"] = float(busy["stream"].median())
        out["main_busy_final_pct"] = float(busy["final"].median())
    return out


def rows(df: pd.DataFrame, target_pct: float) -> pd.DataFrame:
    """The harness table from its runs (columns model, batch, pair, mode stream or
    final, output_tok_s, short_outputs; with the core clock also done_wall_s,
    core_wall_s, lag_s, main_cpu_s): one row per model and batch."""
    out = []
    for (model, batch), g in (df.groupby(["model", "batch"], sort=False) if not df.empty else []):
        wide = paired(g, "output_tok_s")
        if wide.empty:
            continue
        slow = 100 * (wide["final"] - wide["stream"]) / wide["final"]
        m, lo, hi, n = stats.mean_ci(slow)
        out.append({"model": model, "batch": int(batch), "streamed_tok_s": float(wide["stream"].mean()),
                    "final_only_tok_s": float(wide["final"].mean()), "slowdown_pct": m,
                    "slowdown_median_pct": float(slow.median()), "ci95": f"[{lo:.2f}, {hi:.2f}]",
                    "slowdown_ci_lo": lo, "slowdown_ci_hi": hi, "pairs": n,
                    "short_outputs": int(g["short_outputs"].sum()), "verdict": _verdict(lo, hi, n, target_pct),
                    **_delivery(g, target_pct)})
    return pd.DataFrame(out)


def delivered(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of a harness table whose runs carried the core clock (none for older runs)."""
    if "delivery_cost_pct" not in df:
        return df.iloc[0:0]
    return df[np.isfinite(df["delivery_cost_pct"].astype(float))]


def verdict(df: pd.DataFrame) -> str:
    if df.empty or "verdict" not in df:
        return str(df["note"].iloc[0]) if "note" in df and len(df) else "not measured"
    worst = df.loc[df["slowdown_pct"].idxmax()]
    text = (f"Streaming and timing every token costs {df['slowdown_pct'].min():+.2f}% to "
            f"{df['slowdown_pct'].max():+.2f}% of throughput against final outputs only, whole runs; the largest "
            f"at {worst['model']} batch {worst['batch']} ({worst['ci95']}, {worst['verdict']}).")
    d = delivered(df)
    if not d.empty:
        top = d.loc[d["delivery_cost_pct"].idxmax()]
        text += (f" On the engine core's own clock, what streaming adds after the core's last step is "
                 f"{d['delivery_cost_pct'].min():+.3f}% to {d['delivery_cost_pct'].max():+.3f}% of a run; the largest "
                 f"at {top['model']} batch {top['batch']} ({top['delivery_ci95']}, {top['delivery_verdict']}).")
    return text
