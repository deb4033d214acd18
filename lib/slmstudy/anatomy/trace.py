"""A torch-profiler chrome trace -> the window of decode steps and the device
events in it (pure: reads a dict, returns tables).

The worker extension marks each profiled step's start with a ``slmstudy_step#i``
annotation on the profiler's own clock; ``steps`` periods lie between the first
and the last of them. Device events are the GPU's kernels, copies and sets when
the trace has any; on a CPU engine, the engine thread's top-level torch ops (an
op inside another op is part of that op's time). What the device did not cover
of the window is time it waited for the host: Python, scheduling, launches.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

STEP_MARK = "slmstudy_step#"
GPU_CATEGORIES = {"kernel": False, "gpu_memcpy": True, "gpu_memset": True}  # category -> is a copy/set


@dataclass(frozen=True)
class Window:
    start_us: float
    end_us: float
    steps: int
    step_starts_us: tuple[float, ...]
    device: str  # "cuda" or "cpu"

    @property
    def wall_us(self) -> float:
        return self.end_us - self.start_us


def load(path: Path) -> dict[str, Any]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return json.load(f)


# With CUDA the profiler writes each annotation twice: on the host thread that opened
# it ("user_annotation") and as the span of the GPU work it enqueued
# ("gpu_user_annotation"). The steps are the host's marks; counting both made an
# H100 window of 32 steps read as 65 (2026-12-05, commit 8087ffd).
GPU_MARK_CATEGORY = "gpu_user_annotation"


def step_marks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The host's step marks, in time order."""
    marks = [e for e in events if e.get("ph") == "X" and str(e.get("name", "")).startswith(STEP_MARK)
             and e.get("cat") != GPU_MARK_CATEGORY]
    return sorted(marks, key=lambda e: float(e["ts"]))


def _top_level(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ops not nested in another op of the same thread (their children's time is theirs)."""
    out, end = [], float("-inf")
    for e in sorted(ops, key=lambda e: (float(e["ts"]), -float(e.get("dur", 0)))):
        if float(e["ts"]) >= end:
            out.append(e)
            end = float(e["ts"]) + float(e.get("dur", 0))
    return out


def device_events(trace: dict[str, Any]) -> tuple[Window, pd.DataFrame]:
    """The window and its device events (columns name, memcpy, start_us, dur_us,
    step), each clipped to the window; ``step``: index of the step period its
    start falls in. Raises ValueError when the trace holds no complete window."""
    events = trace.get("traceEvents", [])
    marks = step_marks(events)
    if len(marks) < 2:
        raise ValueError(f"the trace marks {len(marks)} step starts ({STEP_MARK}*): a window needs two or more")
    starts = tuple(float(m["ts"]) for m in marks)
    w0, w1 = starts[0], starts[-1]
    gpu = [e for e in events if e.get("ph") == "X" and e.get("cat") in GPU_CATEGORIES]
    if gpu:
        device, chosen = "cuda", gpu
    else:
        tid = marks[0].get("tid")
        device = "cpu"
        chosen = _top_level([e for e in events if e.get("ph") == "X" and e.get("cat") == "cpu_op"
                             and e.get("tid") == tid])
    window = Window(w0, w1, len(marks) - 1, starts, device)
    rows = []
    for e in chosen:
        t0 = float(e["ts"])
        t1 = t0 + float(e.get("dur", 0))
        a, b = max(t0, w0), min(t1, w1)
        if b <= a:
            continue
        rows.append({"name": str(e.get("name", "")), "memcpy": bool(GPU_CATEGORIES.get(e.get("cat"), False)),
                     "start_us": a - w0, "dur_us": b - a, "step": _step_of(starts, t0)})
    df = pd.DataFrame(rows, columns=["name", "memcpy", "start_us", "dur_us", "step"])
    return window, df.sort_values("start_us", kind="stable").reset_index(drop=True)


def _step_of(starts: tuple[float, ...], t: float) -> int:
    """Index of the step period [starts[i], starts[i+1]) holding t (clamped to the window)."""
    import bisect

    return min(max(bisect.bisect_right(starts, t) - 1, 0), len(starts) - 2)


def busy_us(df: pd.DataFrame) -> float:
    """Time covered by at least one event (the union of their intervals)."""
    total, end = 0.0, float("-inf")
    for s, d in sorted(zip(df["start_us"], df["dur_us"])):
        e = s + d
        if s >= end:
            total += d
            end = e
        elif e > end:
            total += e - end
            end = e
    return total
