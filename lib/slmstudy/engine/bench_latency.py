"""Cross-check against vLLM's own ``vllm bench latency``, run with the very same
engine arguments and workload, in a process of its own.

``bench latency`` times whole ``LLM.generate`` calls of one batch (prefill plus
all decode steps), so its tokens/s is ``batch * output_len / avg_latency``: the
same definition as our per-repetition ``output_tok_s``.

The telemetry sampler runs beside it as beside our engine, so both sides of the
comparison say how busy the GPU and the host were and how much CPU time the
hypervisor took away (steal) while they were measured.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .. import modeldir
from ..telemetry.sampler import Sampler
from . import procs
from .args import cli_flags, engine_kwargs
from .spec import ConfigSpec, Point


def command(spec: ConfigSpec, point: Point, out_json: Path, iters: int, warmup: int) -> list[str]:
    source = modeldir.prepare(spec.model, spec.precision, spec.weights, spec.weights_path)
    kwargs = engine_kwargs(source, spec.precision, spec.engine, spec.seed)
    cmd = [
        sys.executable, "-m", "slmstudy.engine.vllm_cli", "bench", "latency",
        "--model", source.model,
        "--input-len", str(point.input_len), "--output-len", str(point.output_len),
        "--batch-size", str(point.batch),
        "--num-iters-warmup", str(warmup), "--num-iters", str(iters),
        "--output-json", str(out_json),
        *cli_flags(kwargs),
    ]
    if kwargs.get("skip_tokenizer_init"):
        cmd.append("--disable-detokenize")  # no tokenizer with dummy weights
    return cmd


def run(spec: ConfigSpec, point: Point, out_dir: Path, iters: int = 10, warmup: int = 3,
        timeout_s: float = 900) -> dict[str, Any]:
    """Run it and return {avg_latency_s, output_tok_s, command, telemetry, ...};
    ``error`` on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_json = out_dir / f"{spec.key}__{point.name}.json"
    trace = out_json.with_suffix(".telemetry.jsonl")
    cmd = command(spec, point, out_json, iters, warmup)
    # Rooted at this process: the tree then holds bench latency and its engine core.
    sampler = Sampler.from_settings(spec.telemetry, trace, root_pid=os.getpid())
    if sampler is not None:
        trace.unlink(missing_ok=True)  # a rerun's trace starts afresh
        sampler.start()
    try:
        fin = procs.run_logged(cmd, out_json.with_suffix(".log"), timeout_s)
    finally:
        if sampler is not None:
            sampler.stop()
    result: dict[str, Any] = {
        "config": spec.key, "model": spec.model, "precision": spec.precision, "batch": point.batch,
        "input_len": point.input_len, "output_len": point.output_len, "iters": iters, "warmup": warmup,
        "command": " ".join(cmd), "returncode": fin.returncode, "seconds": fin.seconds,
    }
    if fin.error or fin.returncode != 0 or not out_json.exists():
        from .vllm_log import root_cause

        log = out_json.with_suffix(".log").read_text(errors="replace")
        result["error"] = fin.error or root_cause(log) or f"exit code {fin.returncode}"
        return result
    data = json.loads(out_json.read_text())
    avg = float(data["avg_latency"])
    result.update(avg_latency_s=avg, output_tok_s=point.batch * point.output_len / avg,
                  latencies_s=data.get("latencies"), percentiles=data.get("percentiles"))
    if sampler is not None:
        latencies = data.get("latencies") or []
        result["telemetry"] = measured_window(trace, out_json.stat().st_mtime, latencies,
                                              len(latencies) * point.batch * point.output_len)
    return result


def measured_window(trace: Path, written_at: float, latencies: list[float], output_tokens: int) -> dict[str, Any]:
    """Telemetry over the measured iterations: bench latency writes its JSON as
    soon as they end, and they ran back to back, so they cover the
    ``sum(latencies)`` seconds before the file's modification time."""
    from ..results.tables import load_telemetry, window_telemetry

    t0 = written_at - sum(latencies)
    out: dict[str, Any] = {"window_t0": t0, "window_t1": written_at}
    try:
        out.update(window_telemetry(load_telemetry(trace), t0, written_at, output_tokens))
    except (OSError, ValueError, KeyError) as exc:  # the trace is evidence, not the result
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out
