"""The serving history across sittings (results.serving_history), with numbers worked
out by hand, and the committed table against the committed references."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from slmstudy.results import serving_history as sh

ROOT = Path(__file__).resolve().parents[1]
H100 = ROOT / "outputs" / "reference" / "h100"


def _levels(tok_s: list[float], requests: int = 64, levels=(1.0, 64.0)) -> pd.DataFrame:
    return pd.DataFrame({
        "model": "m", "precision": "bf16", "weights": "dummy", "api": "chat", "input_tokens": 128,
        "output_tokens_asked": 128, "mode": "concurrency", "level": list(levels), "requests": requests,
        "errors": 0, "output_tok_s": tok_s, "req_s": 1.0, "ttft_p50_s": 0.02, "itl_mean_s": 0.003,
        "tpot_mean_s": 0.003})


def _env(commit, at, gpu="H100"):
    return {"git_commit": commit, "captured_at": at, "gpu_name": gpu}


def test_spread_over_sittings_known_answer():
    a = sh.sitting_rows(_levels([400.0, 10_000.0]), _env("a" * 40, "2026-12-01T00:00:00"))
    b = sh.sitting_rows(_levels([300.0, 16_000.0]), _env("b" * 40, "2026-12-02T00:00:00"))
    c = sh.sitting_rows(_levels([360.0, 8_000.0]), _env("c" * 40, "2026-12-03T00:00:00"))
    table = sh.history([c, a, b])  # any order in, oldest first out
    assert list(table["measured_by"].unique()) == ["aaaaaaa", "bbbbbbb", "ccccccc"]
    s = sh.spread(table).set_index("level")
    # 64 users: 16,000 / 8,000 = 2.0; 1 user: 400 / 300 = 1.333...
    assert s.loc[64.0, "highest_over_lowest"] == pytest.approx(2.0)
    assert s.loc[1.0, "highest_over_lowest"] == pytest.approx(4 / 3)
    assert s.loc[64.0, "values"] == "10,000 / 16,000 / 8,000"
    assert s.loc[64.0, "commits"] == "aaaaaaa / bbbbbbb / ccccccc"
    assert (s["sittings"] == 3).all()


def test_a_sitting_committed_twice_counts_once_and_other_workloads_stay_apart():
    env = _env("a" * 40, "2026-12-01T00:00:00")
    first = sh.sitting_rows(_levels([400.0, 10_000.0]), env)
    again = sh.sitting_rows(_levels([400.0, 10_000.0]), env)  # the same folder in a later commit
    fewer = sh.sitting_rows(_levels([380.0, 9_000.0], requests=32), _env(None, "2026-11-22T00:00:00"))
    table = sh.history([first, again, fewer])
    assert len(table) == 4
    assert table.iloc[0]["measured_by"] == "unrecorded"
    # 32 requests per level is another workload: no level has two sittings of it
    assert sh.spread(table).empty


def test_the_configs_commit_wins_and_a_foreign_table_is_refused():
    rows = sh.sitting_rows(_levels([1.0, 2.0]), _env("e" * 40, "t"), measured_by="f" * 40)
    assert set(rows["measured_by"]) == {"fffffff"}
    with pytest.raises(ValueError, match="ttft_p50_s"):
        sh.sitting_rows(_levels([1.0, 2.0]).drop(columns="ttft_p50_s"), _env("e" * 40, "t"))


def test_committed_history_holds_the_current_reference():
    """The committed table has the current 04 reference's sitting, row for row."""
    table = pd.read_csv(H100 / "serving_history.csv")
    env = json.loads((H100 / "04_serving" / "environment.json").read_text())
    levels = pd.read_csv(H100 / "04_serving" / "tables" / "levels.csv")
    mine = table[(table["measured_by"] == env["git_commit"][:7]) & (table["measured_at"] == env["captured_at"])]
    assert len(mine) == len(levels)
    got = mine.set_index(["model", "mode", "level"])["output_tok_s"].sort_index()
    want = levels.set_index(["model", "mode", "level"])["output_tok_s"].sort_index()
    assert got.to_numpy() == pytest.approx(want.to_numpy())
