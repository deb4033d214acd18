"""Load sweeps against a server, and what each load level achieved.

Two ways to load a server, as vLLM's own ``bench serve`` does:

* **closed loop** (``mode="concurrency"``): C users, each sending its next
  request as soon as its previous one ended; the server sets the pace.
* **open loop** (``mode="rate"``): requests arrive as a Poisson process of a
  given rate (exponential gaps from a seeded RNG), whether or not earlier ones
  have finished; queueing shows up as time to first token.

Per level: request and output-token throughput, p50/p90/p99 of time to first
token, inter-token latency and end-to-end latency, errors by type, and goodput
under a latency objective (by default TTFT <= 200 ms, the articles' figure). A
level in which every request failed is marked ``failed`` with its most common
error, and the sweep stops there (a dead server fails every later level too),
returning everything measured until then.

Definitions follow ``vllm bench serve``: throughputs count completed requests
over the level's duration (first send to last response), inter-token latencies
of all requests are pooled before taking percentiles.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

from ..engine.journal import Journal
from . import tokenizer, window
from .client import RequestRecord, StreamingClient
from .spec import SteadyState
from .tokenizer import Api

Mode = Literal["concurrency", "rate"]
T = TypeVar("T")

# Prompt indices of warm-up requests: far from the measured ones, so no measured
# prompt shares a prefix with a warm-up prompt.
WARMUP_INDEX_BASE = 1_000_000_000


@dataclass(frozen=True)
class Workload:
    """What every request of a sweep asks for."""

    api: Api = "completions"
    input_tokens: int = 128  # prompt words; exactly this many tokens with the generated tokenizer
    output_tokens: int = 128  # max_tokens, with ignore_eos: the output length
    temperature: float = 0.0
    seed: int = 0
    exact_counts: bool = True  # the generated tokenizer: prompt tokens are known in advance

    def expected_prompt_tokens(self) -> int | None:
        return tokenizer.prompt_tokens(self.input_tokens, self.api) if self.exact_counts else None


@dataclass(frozen=True)
class Slo:
    """The latency objective a request must meet to count towards goodput."""

    ttft_s: float | None = 0.2
    tpot_s: float | None = None
    e2e_s: float | None = None

    def met(self, r: RequestRecord) -> bool:
        if not r.ok:
            return False
        for limit, value in ((self.ttft_s, r.ttft_s), (self.tpot_s, r.tpot_s), (self.e2e_s, r.e2e_s)):
            if limit is not None and not (value <= limit):  # NaN never meets an objective
                return False
        return True


# ------------------------------------------------------------------ arrivals
def poisson_arrivals(rate: float, n: int, seed: int) -> np.ndarray:
    """Send offsets (s) of ``n`` requests of a Poisson process of ``rate`` req/s.

    The same seed gives the same unit-exponential gaps at every rate, scaled by
    1/rate, so levels of a rate sweep differ only in speed. ``rate=inf`` sends
    everything at once."""
    if n < 0 or not rate > 0:
        raise ValueError("need n >= 0 and rate > 0")
    if math.isinf(rate):
        return np.zeros(n)
    gaps = np.random.default_rng(seed).standard_exponential(n) / rate
    return np.cumsum(gaps)


# ------------------------------------------------------------------- levels
async def _send(client: StreamingClient, w: Workload, index: int) -> RequestRecord:
    prompt = tokenizer.prompt_text(w.input_tokens, w.seed, index)
    return await client.request(w.api, prompt, w.output_tokens, index=index,
                                prompt_tokens_expected=w.expected_prompt_tokens(), temperature=w.temperature)


async def closed_loop(client: StreamingClient, w: Workload, concurrency: int, n_requests: int,
                      first_index: int = 0, on_record: Callable[[RequestRecord], None] | None = None,
                      ) -> list[dict[str, Any]]:
    """``concurrency`` users send ``n_requests`` in all, each its next as soon as its last ended."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    taken = 0
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    async def user(u: int) -> None:
        nonlocal taken
        while taken < n_requests:
            i = taken
            taken += 1
            sent = time.perf_counter() - t0
            rec = await _send(client, w, first_index + i)
            rows.append({**rec.row(), "user": u, "send_offset_s": sent})
            if on_record:
                on_record(rec)

    await asyncio.gather(*(user(u) for u in range(min(concurrency, n_requests))))
    return rows


async def open_loop(client: StreamingClient, w: Workload, rate: float, n_requests: int, first_index: int = 0,
                    on_record: Callable[[RequestRecord], None] | None = None) -> list[dict[str, Any]]:
    """``n_requests`` sent at Poisson arrival times of ``rate`` req/s, not waiting for answers."""
    offsets = poisson_arrivals(rate, n_requests, w.seed)
    t0 = time.perf_counter()

    async def one(i: int, scheduled: float) -> dict[str, Any]:
        sent = time.perf_counter() - t0
        rec = await _send(client, w, first_index + i)
        if on_record:
            on_record(rec)
        # send_lag_s: how late the client sent it (a busy client would distort the arrival process)
        return {**rec.row(), "scheduled_s": scheduled, "send_offset_s": sent, "send_lag_s": sent - scheduled}

    tasks = []
    for i, off in enumerate(offsets):
        delay = t0 + off - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, float(off))))
    return list(await asyncio.gather(*tasks))


# A windowed level whose first this-many requests all failed stops sending (short):
# otherwise a dead server would be hammered until max_s at every level.
FAILED_FIRST = 5


def _stop_sending(st: dict[str, Any], concurrency: float, wall0: float, steady: SteadyState) -> tuple[bool, bool]:
    """(stop, short) for a windowed level's running state ``st`` (``start``, ``done``,
    ``ended``, ``ok``): the window rule, or a dead server."""
    now = time.time()
    if st["ended"] >= FAILED_FIRST and not st["ok"]:  # no window will ever fill
        return True, True
    win = now - st["start"] if st["start"] is not None else None
    return window.enough(win, st["done"], concurrency, now - wall0, steady.min_s, steady.per_user, steady.max_s)


async def closed_loop_window(client: StreamingClient, w: Workload, concurrency: int, steady: SteadyState,
                             first_index: int = 0, on_record: Callable[[RequestRecord], None] | None = None,
                             ) -> tuple[list[dict[str, Any]], window.Window | None, bool]:
    """``concurrency`` users, each sending its next request as soon as its last ended,
    until the steady-state window is long and full enough (``serving.window``).
    Returns the rows, the window (None if it never began) and whether it is short."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    rows: list[dict[str, Any]] = []
    t0, wall0 = time.perf_counter(), time.time()
    st: dict[str, Any] = {"taken": 0, "first_ends": [], "start": None, "stop": None, "short": False, "done": 0,
                          "ok": 0, "ended": 0}

    def ended(rec: RequestRecord, first: bool) -> None:
        st["ended"] += 1
        st["ok"] += rec.ok
        if first:
            st["first_ends"].append(rec.t_end)
            if len(st["first_ends"]) == concurrency:
                st["start"] = window.closed_start(st["first_ends"])
        elif st["start"] is not None and rec.t_send >= st["start"] and rec.ok:
            st["done"] += 1
        if st["stop"] is None:
            stop, short = _stop_sending(st, concurrency, wall0, steady)
            if stop:
                st["stop"], st["short"] = time.time(), short

    async def user(u: int) -> None:
        first = True
        while st["stop"] is None:
            i = st["taken"]
            st["taken"] += 1
            sent = time.perf_counter() - t0
            rec = await _send(client, w, first_index + i)
            rows.append({**rec.row(), "user": u, "send_offset_s": sent})
            ended(rec, first)
            first = False
            if on_record:
                on_record(rec)

    await asyncio.gather(*(user(u) for u in range(concurrency)))
    win = window.Window(st["start"], st["stop"]) if st["start"] is not None else None
    return rows, win, st["short"] or win is None


async def open_loop_window(client: StreamingClient, w: Workload, rate: float, steady: SteadyState,
                           first_index: int = 0, on_record: Callable[[RequestRecord], None] | None = None,
                           ) -> tuple[list[dict[str, Any]], window.Window | None, bool, bool]:
    """Poisson arrivals at ``rate`` req/s (seeded gaps, as ``poisson_arrivals``) until the
    steady-state window is long and full enough; the concurrency it must hold
    ``per_user`` times is the mean in flight, rate x mean end-to-end latency. The last
    of (rows, window, short, overloaded) says it stopped past the server's capacity."""
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError("a steady-state window needs a finite rate > 0")
    rng = np.random.default_rng(w.seed)
    t0, wall0 = time.perf_counter(), time.time()
    # running sums only: the client shares the host with the server while it measures
    st: dict[str, Any] = {"start": None, "stop": None, "short": False, "done": 0, "ok": 0, "e2e_sum": 0.0,
                          "ended": 0}
    tasks: list[asyncio.Task[dict[str, Any]]] = []

    async def one(i: int, scheduled: float) -> dict[str, Any]:
        sent = time.perf_counter() - t0
        rec = await _send(client, w, first_index + i)
        st["ended"] += 1
        if st["start"] is None:
            st["start"] = rec.t_end
        elif rec.t_send >= st["start"] and rec.ok and (st["stop"] is None or rec.t_end <= st["stop"]):
            st["done"] += 1
        if rec.ok:
            st["ok"] += 1
            st["e2e_sum"] += rec.total_s
        if on_record:
            on_record(rec)
        return {**rec.row(), "scheduled_s": scheduled, "send_offset_s": sent, "send_lag_s": sent - scheduled}

    offset = 0.0
    overloaded = False
    while True:
        in_flight = rate * st["e2e_sum"] / st["ok"] if st["ok"] else 1.0
        stop, short = _stop_sending(st, in_flight, wall0, steady)
        if not stop and window.overloaded(len(tasks), st["ended"], rate, steady.overload_s):
            stop, short, overloaded = True, True, True
        if stop:
            st["stop"], st["short"] = time.time(), short
            break
        offset += float(rng.standard_exponential()) / rate
        delay = t0 + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(len(tasks), offset)))
    rows = list(await asyncio.gather(*tasks))
    win = window.Window(st["start"], st["stop"]) if st["start"] is not None else None
    return rows, win, st["short"] or win is None, overloaded


# --------------------------------------------------------------- aggregates
def _pct(values: Sequence[float] | np.ndarray, q: float) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if len(x) else float("nan")


def aggregate(rows: list[dict[str, Any]], duration_s: float, slo: Slo = Slo()) -> dict[str, Any]:
    """One load level's figures from its request rows (``RequestRecord.row()`` plus labels)."""
    n = len(rows)
    ok = [r for r in rows if r["error_type"] is None]
    errors = collections.Counter(r["error_type"] for r in rows if r["error_type"] is not None)
    ttft = [r["ttft_s"] for r in ok]
    e2e = [r["e2e_s"] for r in ok]
    tpot = [r["tpot_s"] for r in ok]
    itl = [g for r in ok for g in r["itl_s"]]
    out_tokens = sum(r["output_tokens"] for r in ok)
    met = sum(1 for r in rows if slo.met(_as_record(r)))
    failed = n > 0 and not ok
    dur = duration_s if duration_s > 0 else float("nan")
    expected = [r for r in ok if r.get("prompt_tokens_expected") is not None]
    return {
        "requests": n,
        "completed": len(ok),
        "errors": n - len(ok),
        "status": "failed" if failed else ("partial" if errors else "ok"),
        "failure": errors.most_common(1)[0][0] if failed else None,
        "error_counts": json.dumps(dict(sorted(errors.items()))),
        "duration_s": duration_s,
        # Little's law: the mean number of requests the client had outstanding
        "client_in_flight_avg": sum(r["total_s"] for r in rows if math.isfinite(r["total_s"])) / dur,
        "req_s": len(ok) / dur,
        "output_tok_s": out_tokens / dur,
        "output_tokens": out_tokens,
        "prompt_tokens": sum(r["prompt_tokens"] or 0 for r in ok),
        # requests whose prompt the server counted differently from the tokenizer's arithmetic
        "prompt_token_mismatches": sum(1 for r in expected if r["prompt_tokens"] != r["prompt_tokens_expected"]),
        # requests that stopped before max_tokens although ignore_eos was set
        "short_outputs": sum(1 for r in ok if r["output_tokens"] != r["max_tokens"]),
        **{f"ttft_{k}": v for k, v in _dist(ttft).items()},
        **{f"itl_{k}": v for k, v in _dist(itl).items()},
        **{f"e2e_{k}": v for k, v in _dist(e2e).items()},
        **{f"tpot_{k}": v for k, v in _dist(tpot).items()},
        "slo_ttft_s": slo.ttft_s, "slo_tpot_s": slo.tpot_s, "slo_e2e_s": slo.e2e_s,
        "slo_met": met,
        "slo_met_share": met / n if n else float("nan"),
        "goodput_req_s": met / dur,
    }


def _dist(values: Sequence[float]) -> dict[str, float]:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return {"mean_s": float(x.mean()) if len(x) else float("nan"),
            "p50_s": _pct(x, 50), "p90_s": _pct(x, 90), "p99_s": _pct(x, 99),
            "max_s": float(x.max()) if len(x) else float("nan")}


_RECORD_FIELDS = set(RequestRecord.__dataclass_fields__)


def _as_record(row: dict[str, Any]) -> RequestRecord:
    return RequestRecord(**{k: v for k, v in row.items() if k in _RECORD_FIELDS})


# ------------------------------------------------------------------- sweeps
@dataclass
class SweepResult:
    levels: pd.DataFrame  # one row per load level
    requests: pd.DataFrame  # one row per request (tidy: itl_s is a list per request)
    completed: bool  # False when it stopped at a failed level
    next_index: int = 0  # the prompt index a later sweep on the same server starts from


async def sweep(client: StreamingClient, w: Workload, mode: Mode, levels: Sequence[float], requests_per_level: int,
                slo: Slo = Slo(), warmup_requests: int = 0, journal: Journal | None = None,
                labels: dict[str, Any] | None = None, stop_on_failed_level: bool = True,
                on_record: Callable[[RequestRecord], None] | None = None, first_index: int = 0,
                on_edge: Callable[[str, dict[str, Any]], None] | None = None,
                steady: SteadyState | None = None) -> SweepResult:
    """Every level in turn; journal phases (``warmup``, ``load``) line them up with telemetry.

    ``on_edge("start" | "end", labels)`` is called just before each level's clock
    starts and just after it stops, when no request of the sweep is in flight
    (e.g. to read the server's counters at the level's edges); it may block.

    Request ``i`` of the sweep gets prompt index ``first_index + i``: give later
    sweeps on the same server a ``first_index`` past the earlier ones, so that no
    prompt is sent twice (with prefix caching on, a repeat would be a cache hit).

    With ``steady`` each level sends until its steady-state window is long and full
    enough (``serving.window``) and its statistics cover the window's requests only;
    without, it sends ``requests_per_level`` and they all count."""
    if mode not in ("concurrency", "rate"):
        raise ValueError(f"mode must be 'concurrency' or 'rate', not {mode!r}")
    labels = dict(labels or {})
    base = {**labels, "mode": mode, "api": w.api, "input_tokens": w.input_tokens, "output_tokens_asked": w.output_tokens}
    if warmup_requests:
        # First requests pay for lazy initialisation (first compiled shapes, the
        # detokeniser, connection set-up); they are not part of any level.
        with _phase(journal, "warmup", **base):
            await closed_loop(client, w, 1, warmup_requests, first_index=WARMUP_INDEX_BASE + first_index)
    level_rows, request_rows = [], []
    next_index = first_index
    completed = True
    for level in levels:
        lab = {**base, "level": level}
        if on_edge:
            on_edge("start", lab)
        with _phase(journal, "load", **lab) as extra:
            t_wall = time.time()
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            win, short, overloaded = None, False, None
            if steady is None and mode == "concurrency":
                rows = await closed_loop(client, w, int(level), requests_per_level, next_index, on_record)
            elif steady is None:
                rows = await open_loop(client, w, float(level), requests_per_level, next_index, on_record)
            elif mode == "concurrency":
                rows, win, short = await closed_loop_window(client, w, int(level), steady, next_index, on_record)
            else:
                rows, win, short, overloaded = await open_loop_window(client, w, float(level), steady, next_index,
                                                                      on_record)
            duration = time.perf_counter() - t0
            client_cpu_s = time.process_time() - cpu0
            extra["duration_s"] = duration
        if on_edge:
            on_edge("end", lab)
        next_index += len(rows)
        if steady is None:  # a level of fixed size: every request counts
            parts: dict[str, list[dict[str, Any]]] = {"warmup": [], "steady": rows, "drain": []}
        elif win is None:  # the window never began: nothing counts
            parts = {"warmup": rows, "steady": [], "drain": []}
        else:
            parts = dict(window.split(rows, win))
        for phase_name, group in parts.items():
            for r in group:
                r["window_phase"] = phase_name
        counted = parts["steady"]
        agg = aggregate(counted, win.seconds if win else duration, slo)
        # The load generator shares the host with the server: what it cost is part of the record.
        # duration_s: the whole level (the server's counters are read at its edges);
        # the rates and percentiles above: the window's steady requests only
        row = {**lab, "t0": t_wall, "t1": t_wall + duration, **agg, "duration_s": duration,
               "client_cpu_s": client_cpu_s, "window": "steady state" if steady is not None else "whole level",
               "window_t0": win.start if win else None, "window_t1": win.stop if win else None,
               "window_s": win.seconds if win else duration, "window_short": short, "overloaded": overloaded,
               "sent": len(rows), "warmup_excluded": len(parts["warmup"]), "drain_excluded": len(parts["drain"])}
        if mode == "rate":
            lags = [r["send_lag_s"] for r in counted]
            row["send_lag_p99_s"] = _pct(lags, 99)
        level_rows.append(row)
        request_rows += [{**lab, **r} for r in sorted(rows, key=lambda r: r["index"])]
        if journal:  # as soon as measured: a crash later keeps this level
            journal.write("level", **row)
            journal.write("requests", **lab, rows=rows)
        if (agg["status"] == "failed" or (steady is not None and rows and not any(r["ok"] for r in rows))) \
                and stop_on_failed_level:
            completed = False
            break
    return SweepResult(pd.DataFrame(level_rows), pd.DataFrame(request_rows), completed, next_index)


class _NoPhase:
    def __enter__(self) -> dict[str, Any]:
        return {}

    def __exit__(self, *exc: Any) -> None:
        return None


def _phase(journal: Journal | None, name: str, **labels: Any) -> Any:
    return journal.phase(name, **labels) if journal else _NoPhase()


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to the end from synchronous code, also inside Jupyter
    (whose own event loop is running: the coroutine then runs in a thread with
    a loop of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())  # type: ignore[arg-type]
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    t = threading.Thread(target=target, name="slmstudy-load")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
