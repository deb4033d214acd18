"""GuideLLM (``guidellm run``) against our running server, as a third side of the
serving cross-check: the very prompts our client sends (a JSONL file, GuideLLM's
``json_file`` data), each line's ``output_tokens_count`` making it ask for exactly
that many tokens with ``ignore_eos`` (GuideLLM 0.8's request handlers), our
temperature in every request body, closed loop (``concurrent`` profile) at the
level's concurrency for exactly the level's request count, no warm-up, no
readiness probe (``validate_backend`` off), in a process group of its own: the
session's ``guidellm`` tool host (``tool_host``), which imports GuideLLM once per server.

What its clocks measure (GuideLLM 0.8.1, ``backends/openai/http.py`` and
``schemas/base/request_stats.py``), beside ours and ``vllm bench serve``'s:

* time to first token: from when the HTTP request starts being written to the
  first streamed chunk with text (ours: just before the request is sent);
* its "inter-token latency" is per request (last text chunk - first) / (output
  tokens - 1), our **time per output token**: it is compared as ``tpot_*``;
  pooled chunk gaps (our and bench serve's ``itl_*``) it does not report;
* output tokens/s: here, its completed requests' output tokens (the server's
  usage counts) over the benchmark's duration (first request start to last
  response), the definition ours and bench serve's use; GuideLLM's own
  ``output_tokens_per_second`` is a time-weighted rate and is not used;
* every streamed chunk carries usage statistics (GuideLLM asks for
  ``continuous_usage_stats``), a little more work for the server than the
  other two tools ask for.

This module leaves raw files only (``guidellm_*.json`` and ``.log``); the journal
line it returns is what the results layer reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import bench_serve, external
from .load import Workload

PERCENTILES = (50, 90, 99)
# GuideLLM's distributions -> our level columns, with the factor to seconds
METRICS = {"time_to_first_token_ms": ("ttft", 1e-3), "inter_token_latency_ms": ("tpot", 1e-3),
           "request_latency": ("e2e", 1.0)}


def write_prompts(path: Path, w: Workload, first_index: int, n: int) -> None:
    """bench serve's prompt file, each line also naming the output length GuideLLM must ask for."""
    bench_serve.write_prompts(path, w, first_index, n, output_tokens_count=w.output_tokens)


def command(base_url: str, served_model_name: str, w: Workload, concurrency: int, n_requests: int,
            prompts: Path, result: Path) -> list[str]:
    backend = {
        "kind": "openai_http", "target": base_url.removesuffix("/v1"), "model": served_model_name,
        "request_format": "/v1/chat/completions" if w.api == "chat" else "/v1/completions",
        "stream": True, "validate_backend": False,
        "extras": {"body": {"temperature": w.temperature}},
    }
    return [
        sys.executable, "-m", "guidellm", "run", "--backend", json.dumps(backend),
        "--data", f"kind=json_file,path={prompts}",
        "--profile", f"kind=concurrent,streams={concurrency}",
        "--constraint", f"kind=max_requests,count={n_requests}",
        "--output", f"kind=json,path={result}", "--disable-console-interactive",
    ]


def _stat(dist: dict[str, Any]) -> dict[str, Any]:
    return dist.get("successful") or {}


def row_from_result(data: dict[str, Any]) -> dict[str, Any]:
    """GuideLLM's saved result as a level row with our column names (seconds)."""
    bench = (data.get("benchmarks") or [{}])[0]
    m = bench.get("metrics") or {}
    totals = m.get("request_totals") or {}
    # What it sent and completed is its scheduler's count; its statistics cover the
    # requests that ended inside its measured window, which closes when the count is
    # reached: a request ending with the last can fall outside (CI, 2 cores under load,
    # 2026-12-06: 4 made, 2 in the statistics). Its rates and percentiles are over those.
    made = (bench.get("scheduler_metrics") or {}).get("requests_made") or totals
    completed = int(made.get("successful") or 0)
    failed = int(made.get("errored") or 0) + int(made.get("incomplete") or 0)
    duration = bench.get("duration")
    out_tokens = _stat(m.get("output_token_count") or {}).get("total_sum")
    row: dict[str, Any] = {
        "requests": completed + failed, "completed": completed, "errors": failed,
        "requests_in_stats": int(totals.get("successful") or 0), "duration_s": duration,
        "output_tokens": out_tokens, "prompt_tokens": _stat(m.get("prompt_token_count") or {}).get("total_sum"),
        "output_tok_s": out_tokens / duration if out_tokens is not None and duration else None,
        "req_s": int(totals.get("successful") or 0) / duration if duration else None,
    }
    for theirs, (ours, scale) in METRICS.items():
        s = _stat(m.get(theirs) or {})
        if s.get("mean") is not None:
            row[f"{ours}_mean_s"] = s["mean"] * scale
        for p in PERCENTILES:
            v = (s.get("percentiles") or {}).get(f"p{p}")
            if v is not None:
                row[f"{ours}_p{p}_s"] = v * scale
    return row


def run(base_url: str, served_model_name: str, w: Workload, concurrency: int, n_requests: int, first_index: int,
        out: Path, tag: str, timeout_s: float, host: external.ToolHost | None = None) -> dict[str, Any]:
    """Run one level (in ``host``, a ``guidellm`` tool host, when given); returns the
    journal line: the row, or the failure's root cause."""
    prompts, result, log = out / f"{tag}.prompts.jsonl", out / f"{tag}.json", out / f"{tag}.log"
    write_prompts(prompts, w, first_index, n_requests)
    cmd = command(base_url, served_model_name, w, concurrency, n_requests, prompts, result)
    return external.run_tool("guidellm", cmd, result, log, timeout_s, row_from_result, host)
