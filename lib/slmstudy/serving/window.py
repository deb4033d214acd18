"""The steady-state window of a load level, and which requests it counts.

A level's first requests meet a server that is still filling up (every closed-loop
user starts at once, so their first requests queue behind one another's prefill), and
its last ones meet a server that is emptying. Statistics worth quoting come from the
part in between. The rule, the same for every tool we compare:

* **window start**: closed loop, the moment every user's first request has ended (from
  then on each user is in its steady cycle); open loop, the end of the first request
  (the server has then served one whole request under the arrival process);
* **window stop**: the moment the level stops sending;
* a request sent before the start is **warm-up**, one that ends after the stop is
  **drain**; the others are **steady**, and only they enter the level's statistics
  (both excluded groups are counted in the level's row);
* the level sends until the window lasts ``min_s`` and holds ``per_user`` x the
  concurrency in completed steady requests (open loop: the concurrency is the mean
  number in flight, rate x mean end-to-end latency, as Little's law has it), or until
  ``max_s`` from the level's start, when it is marked **short**;
* an open-loop level past the server's capacity (``overload_s`` set) stops once more than
  ``overload_s`` seconds of its arrivals are outstanding, marked **short** and
  **overloaded**: below capacity the requests in flight stay near rate x latency, above it
  they grow without end, and no window would ever be steady.

Pure functions: the load generator asks ``enough`` while it sends; the tables call
``phase``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Phase = Literal["warmup", "steady", "drain"]


@dataclass(frozen=True)
class Window:
    start: float  # wall clock (s)
    stop: float

    @property
    def seconds(self) -> float:
        return self.stop - self.start


def closed_start(first_request_ends: Iterable[float]) -> float:
    """Closed loop: when the last user's first request ended."""
    return max(first_request_ends)


def phase(t_send: float, t_end: float, w: Window) -> Phase:
    if t_send < w.start:
        return "warmup"
    if not t_end <= w.stop:  # NaN (no end recorded) counts as drain: it never completed inside
        return "drain"
    return "steady"


def overload_limit(rate: float, overload_s: float) -> float:
    """Outstanding requests beyond which an open-loop level is past capacity: ``rate x
    overload_s`` (Little's law: outstanding = arrival rate x time in the system, so more is a
    time in the system above ``overload_s``) plus 4 standard deviations of the Poisson count
    of that mean, so a burst of arrivals at a low rate is not taken for overload."""
    mean = rate * overload_s
    return mean + 4.0 * math.sqrt(mean)


def overloaded(sent: int, ended: int, rate: float, overload_s: float | None) -> bool:
    """An open-loop level past capacity: more than ``overload_limit`` requests sent and not ended."""
    return overload_s is not None and sent - ended > overload_limit(rate, overload_s)


def required(per_user: int, concurrency: float) -> int:
    """Completed steady requests a window must hold: ``per_user`` per user in flight."""
    return per_user * max(1, math.ceil(concurrency))


def enough(window_s: float | None, steady_done: int, concurrency: float, elapsed_s: float,
           min_s: float, per_user: int, max_s: float) -> tuple[bool, bool]:
    """(stop sending, short): the window is long and full enough, or the level ran out
    of time (``elapsed_s`` since its start; ``window_s`` None while it has not begun)."""
    if window_s is not None and window_s >= min_s and steady_done >= required(per_user, concurrency):
        return True, False
    if elapsed_s >= max_s:
        return True, True
    return False, False


def split(rows: list[dict[str, Any]], w: Window | None) -> dict[Phase, list[dict[str, Any]]]:
    """Rows by phase; without a window every row is steady (a level of fixed size)."""
    out: dict[Phase, list[dict[str, Any]]] = {"warmup": [], "steady": [], "drain": []}
    for r in rows:
        out[phase(r["t_send"], r["t_end"], w) if w else "steady"].append(r)
    return out
