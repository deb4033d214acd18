"""The front-end A/B read: inside one process, runs of the same batch through
``AsyncLLM`` (streamed and token-timed: what our harness measures; or final
outputs only) and through ``LLM.generate`` (what ``vllm bench latency`` times),
in pairs that rotate the three modes' order (``engine.frontend_ab``).

Per pair, each ``AsyncLLM`` mode against ``LLM.generate`` of the same pair,
``100 * (mode / llm - 1)`` on throughput (the cross-check's sign: negative where
ours is slower); mean and 95% CI (Student's t) over the pairs. Both engines see
the same host state in a pair, so the difference is what the front end costs,
not the host of the moment: the question fresh processes could not settle.

Pure functions of the ``frontend`` table (one row per run).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from .. import stats
from ..engine.spec import FrontendCheck
from . import harness_cost

MODES = FrontendCheck.MODES
SIDES = {"stream": "our streamed path", "final": "AsyncLLM with final outputs only"}


def _wide(g: pd.DataFrame, value: str) -> pd.DataFrame:
    return harness_cost.paired(g, value, MODES)


def _verdict(lo: float, hi: float, n: int, target_pct: float) -> str:
    if -target_pct < lo and hi < target_pct:
        return f"within ±{target_pct:g}%"
    if hi < -target_pct:
        return f"slower by more than {target_pct:g}%"
    if lo > target_pct:
        return f"faster by more than {target_pct:g}%"
    return f"not settled at ±{target_pct:g}% by {n} pairs"


def rows(df: pd.DataFrame, target_pct: float) -> pd.DataFrame:
    """One row per model and batch: each mode's mean throughput, each ``AsyncLLM``
    mode's difference from ``LLM.generate`` with its CI and verdict, and the
    measuring process's CPU time over each mode's run (median over pairs; 100% is
    one core)."""
    out = []
    for (model, batch), g in (df.groupby(["model", "batch"], sort=False) if not df.empty else []):
        tok = _wide(g, "output_tok_s")
        if tok.empty:
            continue
        row: dict[str, object] = {"model": model, "batch": int(batch), "pairs": len(tok),
                                  **{f"{m}_tok_s": float(tok[m].mean()) for m in MODES},
                                  # the host's own spread inside one process: one front end, one batch
                                  "llm_min_tok_s": float(tok["llm"].min()), "llm_max_tok_s": float(tok["llm"].max())}
        for mode in ("stream", "final"):
            diff = 100 * (tok[mode] / tok["llm"] - 1)
            m, lo, hi, n = stats.mean_ci(diff)
            row |= {f"{mode}_vs_llm_pct": m, f"{mode}_vs_llm_ci95": f"[{lo:+.2f}, {hi:+.2f}]",
                    f"{mode}_vs_llm_ci_lo": lo, f"{mode}_vs_llm_ci_hi": hi,
                    f"{mode}_vs_llm_verdict": _verdict(lo, hi, n, target_pct)}
        cpu, wall = _wide(g, "main_cpu_s"), _wide(g, "wall_s")
        both = cpu.index.intersection(wall.index)
        if len(both):
            busy = 100 * cpu.loc[both] / wall.loc[both]
            row |= {f"main_busy_{m}_pct": float(busy[m].median()) for m in MODES}
        row["short_outputs"] = int(g["short_outputs"].sum())
        out.append(row)
    return pd.DataFrame(out)


def sentence(df: pd.DataFrame, name: Callable[[str], str] = str) -> str:
    """Per model (``name``: how a model key reads), each ``AsyncLLM`` mode's difference
    from ``LLM.generate`` at every batch, and the largest gap of our streamed path
    with its CI and verdict."""
    if df.empty or "stream_vs_llm_pct" not in df:
        return str(df["note"].iloc[0]) if "note" in df and len(df) else "not measured"
    parts = []
    for model, g in df.groupby("model", sort=False):
        batches = "/".join(str(b) for b in g["batch"])
        each = {mode: "/".join(f"{v:+.1f}" for v in g[f"{mode}_vs_llm_pct"]) for mode in ("stream", "final")}
        worst = g.loc[g["stream_vs_llm_pct"].abs().idxmax()]
        text = (f"{name(model)}: {SIDES['stream']} {each['stream']}% and {SIDES['final']} "
                f"{each['final']}% at batch {batches}; the largest gap at batch {worst['batch']}, "
                f"{worst['stream_vs_llm_pct']:+.2f}% {worst['stream_vs_llm_ci95']} ({worst['stream_vs_llm_verdict']})")
        if "main_busy_stream_pct" in g:
            text += (f", this process's CPU {worst['main_busy_stream_pct']:.0f}% of the run streamed, "
                     f"{worst['main_busy_final_pct']:.0f}% final only and {worst['main_busy_llm_pct']:.0f}% "
                     f"in LLM.generate")
        top = g.loc[g["batch"].idxmax()]
        text += (f"; LLM.generate's own runs at batch {top['batch']} spanned {top['llm_min_tok_s']:,.0f} to "
                 f"{top['llm_max_tok_s']:,.0f} tok/s")
        parts.append(text)
    lo, hi = int(df["pairs"].min()), int(df["pairs"].max())
    pairs = f"{lo} pairs" if lo == hi else f"{lo}-{hi} pairs"
    return (f"Inside one process ({pairs}, each mode once per pair in rotating order), against "
            f"LLM.generate (what vllm bench latency times): " + "; ".join(parts) + ".")
