"""The steady-state window rule (serving.window), by hand."""

from __future__ import annotations

import math

import pytest

from slmstudy.serving import window


def test_phases_of_a_closed_loop_level_by_hand():
    # 2 users; their first requests end at 1.0 and 1.4: the window starts at 1.4.
    start = window.closed_start([1.0, 1.4])
    w = window.Window(start, 5.0)
    assert (w.start, w.seconds) == (1.4, 3.6)
    assert window.phase(0.0, 1.0, w) == "warmup"  # a first request
    assert window.phase(1.0, 2.0, w) == "warmup"  # sent while the other user was still on its first
    assert window.phase(1.4, 2.3, w) == "steady"  # sent at the start, ended inside
    assert window.phase(4.5, 5.0, w) == "steady"  # ends exactly at the stop
    assert window.phase(4.5, 5.2, w) == "drain"  # still running when sending stopped
    assert window.phase(4.5, math.nan, w) == "drain"  # never ended: not counted
    rows = [{"t_send": a, "t_end": b} for a, b in ((0.0, 1.0), (1.4, 2.3), (4.5, 5.2))]
    assert [len(v) for v in window.split(rows, w).values()] == [1, 1, 1]
    assert [len(v) for v in window.split(rows, None).values()] == [0, 3, 0]  # no window: all count


def test_when_a_level_stops_sending():
    # 8 users x 10 per user = 80 completed steady requests, and 20 s of window
    assert window.required(10, 8) == 80 and window.required(10, 0.3) == 10  # at least one user
    assert window.required(10, 2.2) == 30  # open loop: 2.2 in flight on average -> 3 users
    args = dict(min_s=20.0, per_user=10, max_s=120.0)
    assert window.enough(None, 0, 8, 5.0, **args) == (False, False)  # not begun
    assert window.enough(25.0, 79, 8, 30.0, **args) == (False, False)  # long enough, one short of full
    assert window.enough(19.9, 500, 8, 30.0, **args) == (False, False)  # full, not long enough
    assert window.enough(20.0, 80, 8, 30.0, **args) == (True, False)
    assert window.enough(100.0, 40, 8, 120.0, **args) == (True, True)  # out of time: short


def test_a_dead_server_ends_a_windowed_level_at_once():
    # Nothing listens on the port: every request is refused. Without the stop on
    # failures the level would send until max_s (here 60 s).
    import time

    from slmstudy.serving import load
    from slmstudy.serving.client import StreamingClient
    from slmstudy.serving.server import free_port
    from slmstudy.serving.spec import SteadyState

    steady = SteadyState(min_s=1.0, per_user=2, max_s=60.0)
    w = load.Workload(input_tokens=4, output_tokens=2)

    async def go():
        async with StreamingClient(f"http://127.0.0.1:{free_port()}", "none", timeout_s=5) as c:
            closed = await load.closed_loop_window(c, w, 2, steady)
            opened = await load.open_loop_window(c, w, 50.0, steady)
            return closed, opened

    t0 = time.monotonic()
    (rows_c, win_c, short_c), (rows_o, win_o, short_o, over_o) = load.run_sync(go)
    assert time.monotonic() - t0 < 10
    assert short_c and short_o and not over_o  # refused, not overloaded
    for rows in (rows_c, rows_o):
        assert len(rows) >= load.FAILED_FIRST and {r["error_type"] for r in rows} == {"connection_refused"}


def test_an_open_loop_level_is_overloaded_when_its_arrivals_pile_up():
    # 128 req/s with overload_s 10: a mean of 1,280 outstanding, plus 4 x sqrt(1280) = 143.1
    assert window.overload_limit(128.0, 10.0) == pytest.approx(1423.11, abs=0.01)
    assert window.overloaded(sent=3000, ended=1576, rate=128.0, overload_s=10.0)  # 1,424 outstanding
    assert not window.overloaded(sent=3000, ended=1577, rate=128.0, overload_s=10.0)  # 1,423
    assert not window.overloaded(sent=3000, ended=0, rate=128.0, overload_s=None)  # not watched
    # 5 req/s with 0.3 s: a mean of 1.5, limit 1.5 + 4 x 1.22 = 6.4: two at once is no overload
    assert not window.overloaded(sent=2, ended=0, rate=5.0, overload_s=0.3)
    assert window.overloaded(sent=7, ended=0, rate=5.0, overload_s=0.3)


# A stand-in server of known capacity: 2 requests at a time, 0.1 s each, so 20 req/s.
def _limited_server():
    import asyncio
    import json

    from aiohttp import web

    slots = asyncio.Semaphore(2)

    async def handler(req):
        async with slots:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(req)
            await asyncio.sleep(0.1)
            for n in (1, 2):
                chunk = {"choices": [{"index": 0, "text": " w", "finish_reason": None}],
                         "usage": {"prompt_tokens": 4, "completion_tokens": n}}
                await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await resp.write(b"data: [DONE]\n\n")
            return resp

    app = web.Application()
    app.router.add_post("/v1/completions", handler)
    return app


def _open_level(rate, steady, serve_app):
    from slmstudy.serving import load
    from slmstudy.serving.client import StreamingClient

    w = load.Workload(input_tokens=4, output_tokens=2, seed=1)

    async def go():
        async with serve_app(_limited_server()) as url, StreamingClient(url, "m", timeout_s=30) as c:
            return await load.open_loop_window(c, w, rate, steady)
    return load.run_sync(go)


def test_past_capacity_a_level_stops_early_and_says_so(serve_app):
    import time

    from slmstudy.serving.spec import SteadyState

    # 100 req/s against 20: outstanding grow by about 80 a second, past 30 + 4 x sqrt(30) = 51.9
    # within about a second; without the stop the level would send until max_s (60 s)
    steady = SteadyState(min_s=5.0, per_user=2, max_s=60.0, overload_s=0.3)
    t0 = time.monotonic()
    rows, win, short, over = _open_level(100.0, steady, serve_app)
    assert over and short
    assert time.monotonic() - t0 < 15
    assert 30 < len(rows) < 200 and all(r["ok"] for r in rows)  # every request still answered
    # 5 req/s: a quarter of capacity, outstanding stay near 5 x 0.1 s: a full window, not overloaded
    rows, win, short, over = _open_level(5.0, SteadyState(min_s=1.0, per_user=2, max_s=30.0, overload_s=0.3),
                                         serve_app)
    assert not over and not short and win.seconds >= 1.0
