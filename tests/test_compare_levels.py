"""04_serving's comparison rows: each side's spread from its own requests, checked with
numbers worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from slmstudy.experiments import compare, compare_levels

Z = 1.959963984540054


def _level(ttft_p50, lo, hi, tok_s=100.0, ttft_mean=None, completed=4):
    return {"model": "m", "precision": "bf16", "mode": "concurrency", "level": 1.0, "completed": completed,
            "output_tok_s": tok_s, "ttft_p50_s": ttft_p50, "ttft_p50_lo_s": lo, "ttft_p50_hi_s": hi,
            "ttft_mean_s": ttft_mean}


def _requests(ttfts, phase="steady"):
    return pd.DataFrame({"model": "m", "precision": "bf16", "mode": "concurrency", "level": 1.0,
                         "ttft_s": ttfts, "error_type": None, "window_phase": phase})


def _rows(la, lb, ra, rb, metrics):
    rows = compare_levels.level_rows(pd.DataFrame([la]), pd.DataFrame([lb]), ra, rb, metrics, True, "",
                                     compare.verdict)
    return {r["metric"]: r for r in rows}


def test_a_percentile_is_judged_by_its_bootstrap_interval():
    # A: 10 ms in [9, 11], B: 13 ms in [12, 14]: each SE = 1 ms / 1.96 = 0.5102 ms, so the
    # difference's half-width is 1.96 * sqrt(2) * 0.5102 ms = 1.4142 ms: 3 ms is slower,
    # 1.2 ms is the same
    a = _level(0.010, 0.009, 0.011)
    r = _rows(a, _level(0.013, 0.012, 0.014), _requests([1.0]), _requests([1.0]), {"ttft_p50_s": "lower"})
    assert r["ttft_p50_s"]["diff_ci95"] == "[0.001586, 0.004414]"
    assert r["ttft_p50_s"]["verdict"] == "slower"
    assert r["ttft_p50_s"]["a_ci95"] == "[0.009, 0.011]"  # the recorded bootstrap bounds, not a symmetric one
    assert r["ttft_p50_s"]["spread"] == compare_levels.SPREAD_BOOTSTRAP
    r = _rows(a, _level(0.0112, 0.0102, 0.0122), _requests([1.0]), _requests([1.0]), {"ttft_p50_s": "lower"})
    assert r["ttft_p50_s"]["verdict"] == "same"


def test_a_mean_is_judged_by_the_standard_error_over_its_requests():
    # A: 1, 2, 3, 4 s (mean 2.5, SD 1.2910, SE 0.6455); B: 2, 3, 4, 5 (mean 3.5, same SE):
    # half-width 1.96 * sqrt(2) * 0.6455 = 1.789 > 1: same; B 11..14: slower
    la, lb = _level(0.01, 0.009, 0.011, ttft_mean=2.5), _level(0.01, 0.009, 0.011, ttft_mean=3.5)
    r = _rows(la, lb, _requests([1.0, 2, 3, 4]), _requests([2.0, 3, 4, 5]), {"ttft_mean_s": "lower"})
    lo, hi = (float(x) for x in r["ttft_mean_s"]["diff_ci95"].strip("[]").split(","))
    assert lo == pytest.approx(1 - 1.789, abs=1e-3) and hi == pytest.approx(1 + 1.789, abs=1e-3)
    assert r["ttft_mean_s"]["verdict"] == "same" and r["ttft_mean_s"]["a_n"] == 4
    r = _rows(la, _level(0.01, 0.009, 0.011, ttft_mean=12.5), _requests([1.0, 2, 3, 4]),
              _requests([11.0, 12, 13, 14]), {"ttft_mean_s": "lower"})
    assert r["ttft_mean_s"]["verdict"] == "slower"


def test_only_the_counted_requests_make_the_spread():
    # warm-up requests (outside the steady-state window) and failed ones do not count:
    # with them B's SE would be large enough to call 12.5 s against 2.5 s the same
    reqs = pd.concat([_requests([11.0, 12, 13, 14]), _requests([0.0, 100.0], phase="warmup")])
    failed = _requests([500.0]).assign(error_type="timeout")
    la, lb = _level(0.01, 0.009, 0.011, ttft_mean=2.5), _level(0.01, 0.009, 0.011, ttft_mean=12.5)
    r = _rows(la, lb, _requests([1.0, 2, 3, 4]), pd.concat([reqs, failed]), {"ttft_mean_s": "lower"})
    assert r["ttft_mean_s"]["b_n"] == 4 and r["ttft_mean_s"]["verdict"] == "slower"


def test_throughput_has_one_value_per_level():
    r = _rows(_level(0.01, 0.009, 0.011, tok_s=100.0), _level(0.01, 0.009, 0.011, tok_s=90.0),
              _requests([1.0]), _requests([1.0]), {"output_tok_s": "higher"})
    assert r["output_tok_s"]["verdict"] == "lower (one value per side: no spread)"
    assert r["output_tok_s"]["spread"] == compare_levels.SPREAD_NONE and r["output_tok_s"]["diff_ci95"] == ""
    assert math.isclose(r["output_tok_s"]["ratio_b_over_a"], 0.9)


def test_levels_only_one_side_measured_are_left_out():
    lb = {**_level(0.01, 0.009, 0.011), "level": 2.0}
    assert _rows(_level(0.01, 0.009, 0.011), lb, _requests([1.0]), _requests([1.0]), {"ttft_p50_s": "lower"}) == {}


def test_the_committed_h100_serving_runs_get_verdicts_on_their_latencies():
    # the study's own comparison on the H100 (6690548's references against f98d106's run, made
    # there by this code): its latencies were judged within their spread, not "no spread"; and
    # the reference against itself is the same in every row
    from slmstudy import paths

    ref = paths.reference_dir() / "h100"
    rows = pd.read_csv(ref / "compare_old_new" / "04_serving" / "comparison.csv")
    lat = rows[rows["metric"].isin(["ttft_p50_s", "itl_p50_s", "ttft_mean_s"])]
    assert len(lat) and not lat["verdict"].str.contains("no spread").any()
    assert set(lat["spread"]) <= {compare_levels.SPREAD_BOOTSTRAP, compare_levels.SPREAD_REQUESTS}
    c = compare.compare_folders(ref / "04_serving", ref / "04_serving")
    assert len(c.rows) and (c.rows["verdict"] == "same").all()


def test_levels_where_a_client_was_near_a_core_are_named():
    # client CPU over the level's duration: 0.9 s in 1.0 s is 0.90 of a core, 0.2 s in 1.0 s 0.20
    la = {**_level(0.01, 0.009, 0.011), "client_cpu_s": 0.2, "duration_s": 1.0}
    lb = {**_level(0.01, 0.009, 0.011), "client_cpu_s": 0.9, "duration_s": 1.0}
    rows = pd.DataFrame(compare_levels.level_rows(pd.DataFrame([la]), pd.DataFrame([lb]), _requests([1.0]),
                                                  _requests([1.0]), {"ttft_p50_s": "lower"}, True, "", compare.verdict))
    assert rows["client_cpu_a"].iloc[0] == pytest.approx(0.2) and rows["client_cpu_b"].iloc[0] == pytest.approx(0.9)
    assert compare_levels.client_note(rows) == compare_levels.CLIENT_NOTE + "m concurrency 1 (0.20 vs 0.90)"
    # both below 0.75 of a core: no note; a level without the client's CPU: no share, no note
    lb["client_cpu_s"] = 0.7
    rows = pd.DataFrame(compare_levels.level_rows(pd.DataFrame([la]), pd.DataFrame([lb]), _requests([1.0]),
                                                  _requests([1.0]), {"ttft_p50_s": "lower"}, True, "", compare.verdict))
    assert compare_levels.client_note(rows) == ""
    assert math.isnan(compare_levels.client_share({"duration_s": 1.0}))
