"""vLLM's Prometheus endpoint (``/metrics``) read as numbers, and a thread that
reads it at the telemetry rate.

What the server's scheduler says it is doing (requests running and waiting, KV
cache use, preemptions) is what the client and the GPU trace cannot see: whether
a request waited for a slot, for memory, or for the device. vLLM updates these
series once per engine step (``PrometheusStatLogger.record``), so a scrape every
telemetry interval sees the state of the last step.

The thread runs inside the sampler's process (``sampler --metrics-url``), never in
the load generator's: its HTTP calls and parsing do not compete with the client's
event loop, and its rows share the sampler's wall clock. Each row also says how
long the scrape took (``scrape_s``): that is what the server spent answering it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

# Column -> the Prometheus series that feed it (first name present wins; vLLM
# before 0.10 called the KV cache gauge ``gpu_cache_usage_perc``). Counters carry
# prometheus_client's ``_total`` suffix, histograms their ``_sum`` and ``_count``.
SERIES: dict[str, tuple[str, ...]] = {
    "srv_running": ("vllm:num_requests_running",),
    "srv_waiting": ("vllm:num_requests_waiting",),
    "srv_kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),  # a fraction, 1 = full
    "srv_preemptions": ("vllm:num_preemptions_total",),
    "srv_prefix_cache_queries": ("vllm:prefix_cache_queries_total",),  # tokens looked up
    "srv_prefix_cache_hits": ("vllm:prefix_cache_hits_total",),  # tokens found
    "srv_prompt_tokens": ("vllm:prompt_tokens_total",),
    "srv_generation_tokens": ("vllm:generation_tokens_total",),
    "srv_requests_finished": ("vllm:request_success_total",),  # summed over finish reasons
    "srv_engine_steps": ("vllm:iteration_tokens_total_count",),  # one observation per engine step
    "srv_step_tokens": ("vllm:iteration_tokens_total_sum",),  # tokens scheduled over those steps
    "srv_queue_time_s": ("vllm:request_queue_time_seconds_sum",),  # time requests spent WAITING
    "srv_inference_time_s": ("vllm:request_inference_time_seconds_sum",),  # ... and RUNNING
    "srv_queued_requests": ("vllm:request_queue_time_seconds_count",),
}
# Gauges: a state at the scrape. The rest are counters: only differences mean anything.
GAUGES = ("srv_running", "srv_waiting", "srv_kv_cache_usage")
COUNTERS = tuple(c for c in SERIES if c not in GAUGES)
# Several engines (data parallel) report one label set each: counts add up, a
# usage fraction does not (the fullest engine is the one that preempts).
_COMBINE = {"srv_kv_cache_usage": max}


def _sample(line: str) -> tuple[str, float] | None:
    """``name{labels} value [timestamp]`` -> (name, value); None for other lines.

    Label values may hold spaces and braces inside quotes, so the value is read
    after the last ``}`` rather than by splitting the line."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name, rest = line[:brace], line[line.rfind("}") + 1:]
    else:
        name, rest = line[:space], line[space:]
    parts = rest.split()
    if not parts:
        return None
    try:
        return name, float(parts[0])
    except ValueError:
        return None


def parse(text: str) -> dict[str, float]:
    """The ``SERIES`` columns of one ``/metrics`` page, each summed over its label
    sets (combined by ``_COMBINE`` where a sum is meaningless); a column whose
    series the page lacks is left out, never reported as 0."""
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        s = _sample(line)
        if s is not None:
            found.setdefault(s[0], []).append(s[1])
    out: dict[str, float] = {}
    for column, names in SERIES.items():
        for name in names:
            if name in found:
                values = found[name]
                out[column] = float(_COMBINE.get(column, sum)(values))
                break
    return out


class Scraper(threading.Thread):
    """Reads ``url`` every ``interval_s`` and appends one JSON row per read to
    ``out``: ``t`` (the midpoint of the request, wall clock), ``scrape_s``, and the
    parsed columns, or ``scrape_error``. A failing read never ends the trace."""

    def __init__(self, url: str, out: Path, interval_s: float, timeout_s: float = 2.0):
        super().__init__(name="slmstudy-metrics", daemon=True)
        self.url, self.out, self.interval_s, self.timeout_s = url, Path(out), interval_s, timeout_s
        self._halt = threading.Event()
        self.scrapes = 0
        self.cpu_s = 0.0  # this thread's own CPU time: the scraper's cost on the sampler's side

    def stop(self, timeout_s: float = 5.0) -> None:
        self._halt.set()
        self.join(timeout_s)

    def run(self) -> None:
        cpu0 = time.thread_time()
        next_tick = time.monotonic()
        with client(self.timeout_s) as http, open(self.out, "a", buffering=1) as fh:
            while not self._halt.is_set():
                fh.write(json.dumps(scrape_once(http, self.url)) + "\n")
                self.scrapes += 1
                next_tick += self.interval_s
                delay = next_tick - time.monotonic()
                if delay <= 0:
                    next_tick = time.monotonic()  # fell behind: do not burst to catch up
                    delay = 0
                self._halt.wait(delay)
            self.cpu_s = time.thread_time() - cpu0
            fh.write(json.dumps({"t": time.time(), "scraper_end": True, "scrapes": self.scrapes,
                                 "scraper_cpu_s": self.cpu_s}) + "\n")


def client(timeout_s: float = 2.0) -> Any:
    """A synchronous HTTP client for a local server: never through a proxy from the environment."""
    import httpx

    return httpx.Client(timeout=timeout_s, trust_env=False)


def scrape_once(http: Any, url: str) -> dict[str, Any]:
    """One read of ``url`` with a synchronous ``httpx.Client``, as a trace row."""
    t0, p0 = time.time(), time.perf_counter()
    try:
        r = http.get(url)
        r.raise_for_status()
        row: dict[str, Any] = parse(r.text)
    except Exception as exc:
        row = {"scrape_error": f"{type(exc).__name__}: {exc}"[:300]}
    took = time.perf_counter() - p0
    return {"t": t0 + took / 2, "scrape_s": took, **row}
