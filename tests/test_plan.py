"""The study plan on the shipped GPU profiles: each engine is measured once with
the points of every notebook that asks for it, in an order that keeps caches warm
and cross-checks adjacent. Pure: no engine starts."""

from __future__ import annotations

import pytest

from slmstudy.engine.spec import BenchLatencyJob, EngineJob, Point
from slmstudy.experiments import registry
from slmstudy.jobs import HardwareProbeJob
from slmstudy.measure import plan
from slmstudy.serving.spec import ServeJob

DS, LL = "deepseek-r1-distill-qwen-1.5b", "llama-3.2-1b-instruct"
STUDY = ("01_model_vs_model", "02_precision", "03_batch_scaling", "04_serving")


def _jobs(notebook: str, **overrides):
    r = registry.resolve(notebook, "gpu", overrides=overrides or None, machine=False)
    return registry.experiment(notebook).jobs(r.params)


@pytest.fixture(scope="module")
def study_plan():
    """The study with 03's cross-check layered on (the default gpu study leaves it out)."""
    return plan.build(j for nb in STUDY for j in _jobs(nb, **XCHECK.get(nb, {})))


# The fidelity layer's switch: what -f params/03_batch_scaling/fidelity_gpu.yaml turns on.
XCHECK = {"03_batch_scaling": {"bench_latency": {"enabled": True}}}


def test_default_gpu_study_leaves_the_cross_check_out():
    jobs = plan.build(j for nb in STUDY for j in _jobs(nb))
    assert not any(isinstance(j, BenchLatencyJob) for j in jobs)
    ds = next(j for j in _engines(jobs) if j.engine.model == DS and j.engine.precision == "bf16" and j.start == "any")
    # batch 1 at 128/256 is then 01's "single" (10 runs, 2 warm-ups), the sweeps' b1 within it
    b1 = next(p for p in ds.points if (p.batch, p.input_len, p.output_len) == (1, 128, 256))
    assert (b1.repetitions, b1.warmup) == (10, 2)
    assert len(_engines(jobs)) == 7 and len(jobs) == 10


def _engines(jobs):
    return [j for j in jobs if isinstance(j, EngineJob)]


def test_each_engine_runs_once_for_all_notebooks(study_plan):
    engines = _engines(study_plan)
    # 01 asks for a cold start of each model; 01, 02 and 03 share one engine of each
    # model in bf16; 02 adds fp32, int8 and fp8: 2 + 2 + 3 = 7 engine processes.
    assert [(j.engine.model, j.engine.precision, j.start) for j in engines] == [
        (DS, "bf16", "cold"), (DS, "bf16", "any"), (DS, "fp32", "any"), (DS, "int8", "any"), (DS, "fp8", "any"),
        (LL, "bf16", "cold"), (LL, "bf16", "any")]
    assert sum(isinstance(j, ServeJob) for j in study_plan) == 2
    assert sum(isinstance(j, HardwareProbeJob) for j in study_plan) == 1  # 02 and 03 both ask: probed once


def test_points_of_one_shape_are_measured_once_as_thoroughly_as_asked(study_plan):
    ds = next(j for j in _engines(study_plan) if j.engine.model == DS and j.engine.precision == "bf16"
              and j.start == "any")
    shapes = [(p.batch, p.input_len, p.output_len) for p in ds.points]
    assert len(shapes) == len(set(shapes))
    # batch 1 at 128/256: 03's cross-check point (30 runs, 3 warm-ups, first on the
    # fresh engine) also serves 01's "single" (10 runs) and the sweeps' b1 (5 runs).
    first = ds.points[0]
    assert (first.batch, first.input_len, first.output_len, first.repetitions, first.warmup, first.first) == \
        (1, 128, 256, 30, 3, True)
    # batch 4: 01's batch4 asks 10 runs and 2 warm-ups, the sweeps 5 and 1.
    b4 = next(p for p in ds.points if p.batch == 4 and p.input_len == 128)
    assert (b4.repetitions, b4.warmup) == (10, 2)
    # 03's nine batch sizes and 01's 100-in/512-out point: ten shapes in all.
    assert sorted(shapes) == sorted([(b, 128, 256) for b in (1, 2, 4, 8, 16, 32, 64, 128, 256)] + [(1, 100, 512)])


def test_merged_job_satisfies_every_notebook_and_nothing_more():
    merged = plan.build(j for nb in STUDY for j in _jobs(nb))
    engines = _engines(merged)
    for nb in STUDY:
        for need in _engines(_jobs(nb)):
            assert any(j.satisfies(need) for j in engines), (nb, need.key)
    p = Point(name="x", batch=1, input_len=128, output_len=256, repetitions=5, warmup=1, temperature=0.6)
    more = p.model_copy(update={"repetitions": 31})
    assert not any(j.satisfies(EngineJob(engine=engines[1].engine, points=(more,))) for j in engines)


def test_cold_start_first_and_bench_latency_just_before_its_engine(study_plan):
    keys = [j.key for j in study_plan]
    assert isinstance(study_plan[0], HardwareProbeJob)
    for model in (DS, LL):
        cold, bench, main = (keys.index(f"{model}__bf16__dummy__cold"), keys.index(f"{model}__bf16__dummy__bench_b1"),
                             keys.index(f"{model}__bf16__dummy"))
        assert cold < bench and main == bench + 1
        # every engine of the model after its cold start (which empties the model's caches)
        assert all(i > cold for i, j in enumerate(study_plan) if isinstance(j, EngineJob)
                   and j.engine.model == model and j.start != "cold")
    assert all(isinstance(j, ServeJob) for j in study_plan[-2:])


def test_cross_check_rounds_are_fresh_engines_interleaved_across_models():
    jobs = plan.build(_jobs("03_batch_scaling", bench_latency={"enabled": True, "rounds": 3}))
    tail = [(j.kind, j.engine.model, j.round) for j in jobs if getattr(j, "round", 1) > 1]
    assert tail == [("bench_latency", DS, 2), ("engine", DS, 2), ("bench_latency", LL, 2), ("engine", LL, 2),
                    ("bench_latency", DS, 3), ("engine", DS, 3), ("bench_latency", LL, 3), ("engine", LL, 3)]
    later = [j for j in jobs if isinstance(j, EngineJob) and j.round > 1]
    assert all(len(j.points) == 1 and j.points[0].first for j in later)
    first = next(j for j in jobs if isinstance(j, EngineJob) and j.engine.model == DS)
    assert all(j.engine == first.engine for j in later if j.engine.model == DS)


def test_bench_latency_runs_the_engine_it_precedes():
    jobs = plan.build(_jobs("03_batch_scaling", **XCHECK["03_batch_scaling"]))
    assert any(isinstance(j, BenchLatencyJob) for j in jobs)
    for i, j in enumerate(jobs):
        if isinstance(j, BenchLatencyJob):
            nxt = jobs[i + 1]
            assert isinstance(nxt, EngineJob) and nxt.engine == j.engine and nxt.points[0].shape == j.point.shape


def test_bench_latency_at_several_batches_runs_largest_first_just_before_its_engine():
    jobs = plan.build(_jobs("03_batch_scaling", bench_latency={"enabled": True, "batch_sizes": [1, 16, 64, 256], "rounds": 2}))
    for model in (DS, LL):
        for rnd in (1, 2):
            mine = [(i, j) for i, j in enumerate(jobs) if isinstance(j, (BenchLatencyJob, EngineJob))
                    and j.engine.model == model and j.round == rnd and getattr(j, "start", "any") == "any"]
            assert [j.kind for _, j in mine] == ["bench_latency"] * 4 + ["engine"]
            assert [j.point.batch for _, j in mine[:4]] == [256, 64, 16, 1]
            assert [i for i, _ in mine] == list(range(mine[0][0], mine[0][0] + 5))  # back to back
            engine = mine[-1][1]
            # the engine measures our sides first, smallest batch first, in every round
            assert [(p.batch, p.first) for p in engine.points[:4]] == [(1, True), (16, True), (64, True), (256, True)]
            if rnd == 2:
                assert len(engine.points) == 4
