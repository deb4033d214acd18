"""Statistics and the joins between telemetry and work, on data with known answers."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from slmstudy import paths, stats
from slmstudy.atomic import write_table
from slmstudy.results.energy import energy_between
from slmstudy.results.windows import window_stats


def test_mean_ci_matches_t_interval():
    x = [10.0, 12.0, 11.0, 13.0, 9.0]
    m, lo, hi, n = stats.mean_ci(x)
    # t(0.975, 4) = 2.776; s = 1.581; half = 2.776 * 1.581 / sqrt(5) = 1.963
    assert (m, n) == (11.0, 5)
    assert hi - m == pytest.approx(1.963, abs=1e-3)
    assert m - lo == pytest.approx(hi - m)


def test_mean_ci_degenerate_inputs():
    assert stats.mean_ci([]) [3] == 0
    m, lo, hi, n = stats.mean_ci([5.0, float("nan")])
    assert (m, n) == (5.0, 1) and np.isnan(lo) and np.isnan(hi)


def test_summarize_groups():
    df = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 2, "v": [1.0, 2.0, 3.0, 10.0, 10.0]})
    s = stats.summarize(df, ["model"], ["v"]).set_index("model")
    assert s.loc["a", "v"] == 2.0 and s.loc["a", "n"] == 3
    assert s.loc["b", "v_lo"] == s.loc["b", "v_hi"] == 10.0


def _trace(power_w: float = 200.0, hz: float = 20.0, seconds: float = 10.0) -> pd.DataFrame:
    t = np.arange(0, seconds, 1 / hz) + 1000.0
    return pd.DataFrame({"t": t, "power_w": power_w, "energy_mj": (t - 1000.0) * power_w * 1000,
                         "gpm_sm_active_pct": np.where(t < 1005, 10.0, 90.0)})


def test_energy_from_counter_interpolates_between_samples():
    tel = _trace()
    assert energy_between(tel, 1002.01, 1004.51) == pytest.approx(200 * 2.5, rel=1e-9)


def test_energy_falls_back_to_integrating_power():
    tel = _trace().drop(columns=["energy_mj"])
    assert energy_between(tel, 1001.0, 1003.0) == pytest.approx(400.0, rel=1e-6)


def test_energy_outside_the_trace_is_unknown():
    assert np.isnan(energy_between(_trace(), 995.0, 1002.0))
    assert np.isnan(energy_between(pd.DataFrame(), 0, 1))


def test_window_stats_average_only_inside_the_window():
    s = window_stats(_trace(), 1006.0, 1008.0)
    assert s["gpm_sm_active_pct_mean"] == 90.0 and s["telemetry_samples"] == 41


def test_write_table_keeps_lists_in_parquet_only(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "itl_s": [np.array([0.1, 0.2], np.float32), np.array([0.3], np.float32)]})
    write_table(df, tmp_path / "t")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert list(back["itl_s"][0]) == pytest.approx([0.1, 0.2])
    assert list(pd.read_csv(tmp_path / "t.csv").columns) == ["a"]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_environment_commit_given_by_the_caller_wins_over_git(monkeypatch):
    # A copy of the tree run elsewhere may carry a stale .git; the commit the
    # caller names is the one whose code ran, and its dirtiness is unknown.
    from slmstudy.results import environment

    named = "0123456789abcdef0123456789abcdef01234567"
    try:
        monkeypatch.setenv("SLMSTUDY_GIT_COMMIT", named)
        environment.identity.cache_clear()
        ident = environment.identity()
        assert (ident["git_commit"], ident["git_dirty"]) == (named, None)
        assert environment.identity_label(ident) == "0123456789ab?"
        monkeypatch.delenv("SLMSTUDY_GIT_COMMIT")
        environment.identity.cache_clear()
        from_git = environment.identity()
        assert from_git["git_commit"] != named and from_git["git_dirty"] in (True, False)
    finally:
        environment.identity.cache_clear()


@pytest.mark.parametrize("named", ["3663624a", "3663624C192331747E3FB49917332291BB2174A3", "HEAD", ""])
def test_environment_commit_named_by_the_caller_must_be_a_whole_commit_id(monkeypatch, named):
    # An abbreviation or a ref would be recorded in every row the run measures.
    from slmstudy.errors import SlmstudyError
    from slmstudy.results import environment

    monkeypatch.setenv("SLMSTUDY_GIT_COMMIT", named)
    environment.identity.cache_clear()
    try:
        with pytest.raises(SlmstudyError, match="SLMSTUDY_GIT_COMMIT.*40 lowercase hex"):
            environment.identity()
    finally:
        environment.identity.cache_clear()


def test_identity_labels_say_what_code_measured():
    from slmstudy.results.environment import identity_label

    assert identity_label({"git_commit": "a" * 40, "git_dirty": False}) == "a" * 12
    assert identity_label({"git_commit": "a" * 40, "git_dirty": True, "git_diff": "d1ff"}) == "a" * 12 + "+dirty:d1ff"
    assert identity_label({"git_commit": None, "git_dirty": None}) == "unknown?"


def test_committed_reference_csvs_are_rectangular():
    # Hand-extended files such as crosscheck_history.csv must stay machine-readable:
    # a stray comma in a text field would shift every later column.
    files = sorted(paths.reference_dir().rglob("*.csv"))
    assert files
    for f in files:
        rows = list(csv.reader(f.open(newline="")))
        widths = {len(r) for r in rows if r}
        assert len(widths) == 1, f"{f}: rows of {sorted(widths)} fields"


def test_relabel_corrects_a_typed_commit_and_keeps_the_correction(tmp_path):
    # tools/relabel_commit.py: the lent host's pool recorded a mistyped commit name
    import importlib.util
    import json

    from slmstudy import paths

    spec = importlib.util.spec_from_file_location("relabel_commit", paths.project_root() / "tools" / "relabel_commit.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    full = "3663624c192331747e3fb49917332291bb2174a3"
    for name, dirty in (("typed", None), ("other", None), ("z-from-git", False)):
        entry = tmp_path / name
        entry.mkdir()
        commit = "3663624a" if name != "other" else "0" * 40
        (entry / "environment.json").write_text(json.dumps({"git_commit": commit, "identity": f"{commit}?", "gpu": "H100"}))
        (entry / "events.jsonl").write_text('{"commit": "3663624a"}\n')
        status = {"identity": {"git_commit": commit, "git_dirty": dirty}, "identity_label": f"{commit}?",
                  "manifest": {"environment.json": {"bytes": 1}, "events.jsonl": {"bytes": 24}}}
        (entry / "status.json").write_text(json.dumps(status))
    with pytest.raises(SystemExit, match="from git"):
        tool.relabel(tmp_path, "3663624a", full, "typo")
    assert json.loads((tmp_path / "typed" / "environment.json").read_text())["git_commit"] == "3663624a"
    (tmp_path / "z-from-git" / "status.json").unlink()
    with pytest.raises(SystemExit, match="whole commit id"):
        tool.relabel(tmp_path, "3663624a", "3663624c", "typo")
    assert tool.relabel(tmp_path, "3663624a", full, "typed on the lent host") == ["typed"]
    env = json.loads((tmp_path / "typed" / "environment.json").read_text())
    status = json.loads((tmp_path / "typed" / "status.json").read_text())
    assert (env["git_commit"], env["identity"], env["gpu"]) == (full, "3663624c1923?", "H100")
    assert status["identity"]["git_commit"] == full and status["identity_label"] == "3663624c1923?"
    assert status["manifest"]["environment.json"]["bytes"] == (tmp_path / "typed" / "environment.json").stat().st_size
    assert [(r["from"], r["to"], r["reason"]) for r in status["relabelled"]] == [("3663624a", full, "typed on the lent host")]
    # measured data is not opened; another commit's entry is left alone
    assert (tmp_path / "typed" / "events.jsonl").read_text() == '{"commit": "3663624a"}\n'
    assert json.loads((tmp_path / "other" / "environment.json").read_text())["git_commit"] == "0" * 40
