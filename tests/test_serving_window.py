"""The steady-state window rule (serving.window), by hand."""

from __future__ import annotations

import math

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
    (rows_c, win_c, short_c), (rows_o, win_o, short_o) = load.run_sync(go)
    assert time.monotonic() - t0 < 10
    assert short_c and short_o
    for rows in (rows_c, rows_o):
        assert len(rows) >= load.FAILED_FIRST and {r["error_type"] for r in rows} == {"connection_refused"}
