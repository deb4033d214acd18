"""Cross-check against vLLM's own ``vllm bench latency``, run with the very same
engine arguments and workload, in a process of its own.

``bench latency`` times whole ``LLM.generate`` calls of one batch (prefill plus
all decode steps), so its tokens/s is ``batch * output_len / avg_latency``: the
same definition as our per-repetition ``output_tok_s``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .. import modeldir
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
    """Run it and return {avg_latency_s, output_tok_s, command, ...}; ``error`` on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_json = out_dir / f"{spec.key}__{point.name}.json"
    cmd = command(spec, point, out_json, iters, warmup)
    fin = procs.run_logged(cmd, out_json.with_suffix(".log"), timeout_s)
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
    return result
