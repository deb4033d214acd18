"""What does sampling cost the measured work? A steady, launch-bound probe.

End-to-end engine runs on a shared host vary by several percent from run to run
(batch-1 decoding is bound by the host's launch path), far more than the 1%
the sampler must stay under; paired engine runs can only bound the cost
loosely. This probe isolates the one path through which an NVML sampler could
slow an inference engine: it does decode-like work, many small kernels with a
host synchronisation per step (CUDA-graph replays of 28 small matmuls on a GPU,
small matmuls on a CPU), counts steps per second for 1 s windows, and alternates
windows with the sampler running and stopped (ABBA order), many times.

    python -m slmstudy.telemetry.overhead_probe OUT_JSON [--interval-ms 50] [--pairs 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import stats
from ..params import DEFAULT_INTERVAL_MS
from .sampler import Sampler


def _step_fn() -> tuple[Any, str]:
    import torch

    if torch.cuda.is_available():
        x = torch.randn(1, 1536, device="cuda", dtype=torch.bfloat16)
        ws = [torch.randn(1536, 1536, device="cuda", dtype=torch.bfloat16) for _ in range(28)]

        def body() -> None:
            y = x
            for w in ws:
                y = y @ w
            out.copy_(y)

        out = torch.empty_like(x)
        body()
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            body()

        def step() -> None:
            graph.replay()
            out.sum().item()  # a host sync each step, as decoding samples a token

        return step, torch.cuda.get_device_name(0)
    torch.set_num_threads(1)
    x = torch.randn(1, 256)
    ws = [torch.randn(256, 256) for _ in range(28)]

    def cpu_step() -> None:
        y = x
        for w in ws:
            y = y @ w

    return cpu_step, "cpu"


def _window(step: Any, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        step()
        n += 1
    return n / elapsed


def run(out: Path, interval_ms: float = DEFAULT_INTERVAL_MS, pairs: int = 20, seconds: float = 1.0) -> dict[str, Any]:
    step, device = _step_fn()
    _window(step, 1.0)  # warm-up
    sampler = Sampler(out.with_suffix(".trace.jsonl"), interval_ms)
    on, off = [], []
    for pair in range(pairs):
        for with_sampler in ((True, False) if pair % 2 == 0 else (False, True)):
            if with_sampler:
                sampler.start()
                on.append(_window(step, seconds))
                sampler.stop()
            else:
                off.append(_window(step, seconds))
    # Paired relative slowdowns cancel drifts slower than a pair.
    diffs = 100 * (np.array(off) - np.array(on)) / np.array(off)
    mean, lo, hi, n = stats.mean_ci(diffs)
    result = {
        "device": device, "interval_ms": interval_ms, "pairs": pairs, "window_s": seconds,
        "sampler_backend": sampler.info.get("backend"),
        "steps_per_s_with_sampler": float(np.mean(on)), "steps_per_s_without": float(np.mean(off)),
        "slowdown_pct": mean, "slowdown_pct_ci95": [lo, hi], "n": n,
        "slowdown_pct_median": float(np.median(diffs)),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slmstudy.telemetry.overhead_probe")
    ap.add_argument("out", type=Path)
    ap.add_argument("--interval-ms", type=float, default=float(DEFAULT_INTERVAL_MS))
    ap.add_argument("--pairs", type=int, default=20)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.out, a.interval_ms, a.pairs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
