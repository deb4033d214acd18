"""``vllm bench serve`` against our running server, as the serving cross-check's
other side: the same prompts (a JSONL file of our prompt texts, vLLM's ``custom``
dataset, no chat template added by the tool), the same output length
(``ignore_eos``), temperature and concurrency, in a process group of its own: the
session's ``vllm`` tool host (``tool_host``), which imports vLLM once per server.

What each tool starts and stops its clocks on (vLLM 0.26-0.32,
``vllm/benchmarks/lib/endpoint_request_func.py`` and ``serve.py``):

* time to first token: both from just before the HTTP request is sent to the
  first streamed chunk that carries output;
* inter-token latency: both the gaps between successive chunks of a request,
  pooled over all requests before taking percentiles;
* output tokens/s: ours, output tokens of completed requests over the level's
  span (first send to last response); bench serve's, the same count over its
  ``duration`` (the first request of its run to the last response; its initial
  single-prompt readiness test is outside that span).

This module leaves raw files only (``bench_serve_*.json`` and ``.log``); the
journal line it returns is what the results layer reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import external, tokenizer
from .load import Workload

PERCENTILES = (50, 90, 99)
# bench serve's result keys (milliseconds) -> our level columns (seconds)
METRICS = {"ttft": "ttft", "itl": "itl", "tpot": "tpot", "e2el": "e2e"}


def write_prompts(path: Path, w: Workload, first_index: int, n: int, **fields: Any) -> None:
    """The very prompts our client sends for indices ``first_index .. +n`` (one JSON
    object per line; ``fields`` added to each, as another tool may need)."""
    with path.open("w") as f:
        for i in range(first_index, first_index + n):
            f.write(json.dumps({"prompt": tokenizer.prompt_text(w.input_tokens, w.seed, i), **fields}) + "\n")


def command(base_url: str, served_model_name: str, tokenizer_path: str, w: Workload, concurrency: int,
            n_requests: int, prompts: Path, result: Path) -> list[str]:
    backend, endpoint = ("openai-chat", "/v1/chat/completions") if w.api == "chat" else ("openai", "/v1/completions")
    return [
        sys.executable, "-m", "slmstudy.engine.vllm_cli", "bench", "serve",
        "--backend", backend, "--base-url", base_url, "--endpoint", endpoint,
        "--model", tokenizer_path, "--served-model-name", served_model_name, "--tokenizer", tokenizer_path,
        "--dataset-name", "custom", "--dataset-path", str(prompts), "--skip-chat-template", "--disable-shuffle",
        "--custom-output-len", str(w.output_tokens), "--ignore-eos", "--temperature", str(w.temperature),
        "--num-prompts", str(n_requests), "--max-concurrency", str(concurrency), "--request-rate", "inf",
        "--seed", str(w.seed), "--disable-tqdm",
        "--percentile-metrics", ",".join(METRICS), "--metric-percentiles", ",".join(map(str, PERCENTILES)),
        "--save-result", "--result-dir", str(result.parent), "--result-filename", result.name,
    ]


def row_from_result(data: dict[str, Any]) -> dict[str, Any]:
    """bench serve's saved result as a level row with our column names (seconds)."""
    completed = int(data.get("completed") or 0)
    failed = int(data.get("failed") or 0)
    row: dict[str, Any] = {
        "requests": completed + failed, "completed": completed, "errors": failed,
        "duration_s": data.get("duration"), "output_tok_s": data.get("output_throughput"),
        "req_s": data.get("request_throughput"), "output_tokens": data.get("total_output_tokens"),
        "prompt_tokens": data.get("total_input_tokens"),
    }
    for theirs, ours in METRICS.items():
        if f"mean_{theirs}_ms" in data:
            row[f"{ours}_mean_s"] = data[f"mean_{theirs}_ms"] / 1000
        for p in PERCENTILES:
            if f"p{p}_{theirs}_ms" in data:
                row[f"{ours}_p{p}_s"] = data[f"p{p}_{theirs}_ms"] / 1000
    return row


def run(base_url: str, served_model_name: str, tokenizer_path: str, w: Workload, concurrency: int,
        n_requests: int, first_index: int, out: Path, tag: str, timeout_s: float,
        host: external.ToolHost | None = None) -> dict[str, Any]:
    """Run one level (in ``host``, a ``vllm`` tool host, when given); returns the journal
    line: the row, or the failure's root cause."""
    prompts, result, log = out / f"{tag}.prompts.jsonl", out / f"{tag}.json", out / f"{tag}.log"
    write_prompts(prompts, w, first_index, n_requests)
    cmd = command(base_url, served_model_name, tokenizer_path, w, concurrency, n_requests, prompts, result)
    return external.run_tool("vllm bench serve", cmd, result, log, timeout_s, row_from_result, host)
