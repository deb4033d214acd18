"""06_edge without an engine: its parameters refuse bad input before anything
starts, its plan runs the files before llama.cpp and both after the GPU work,
and its analyses give known answers computed by hand."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from slmstudy import ParamsError, catalog
from slmstudy.edge import checks
from slmstudy.edge.spec import EdgeJob, GgufFileJob
from slmstudy.engine.spec import EngineJob
from slmstudy.experiments import edge
from slmstudy.measure import plan
from slmstudy.params import load
from slmstudy.serving.spec import ServeJob


def _load(**kw):
    return load("06_edge", edge.Params, profile="cpu", **kw)


def _problems(**kw) -> list[str]:
    with pytest.raises(ParamsError) as exc:
        _load(**kw)
    return exc.value.problems


def test_cpu_profile_validates(project):
    p = _load().params
    assert p.file_types == ["F16", "Q8_0", "Q4_K_M"] and p.threads == "auto"
    assert (p.workload.input_len, p.workload.output_len) == (100, 512)  # article 001's test


def test_threads_above_the_cores_present_are_refused_naming_them(project, monkeypatch):
    monkeypatch.setattr(checks, "cores_present", lambda: (2, "2 cores"))
    [msg] = _problems(overrides={"threads": [1, 4]})
    assert msg == ("overrides: key 'threads[1]': 4 threads asked, but this machine has 2 CPU cores present (2 cores): "
                   "llama.cpp threads beyond the cores would only wait for each other; allowed: 1 to 2, or auto")


def test_thread_counts_are_this_process_share_of_the_cores():
    n, where = checks.cores_present()
    assert n == len(os.sched_getaffinity(0)) and str(n) in where
    assert checks.thread_problems([n]) == []  # as many threads as cores: fine
    assert checks.thread_problems([3], (2, "this process may run on 2 of the machine's 8 cores"))[0][1].startswith(
        "3 threads asked, but this machine has 2 CPU cores present (this process may run on 2 of the machine's 8")


def test_gpu_profile_files_validate_on_any_machine(project):
    """Thread counts are a machine check: the GPU profile's files validate anywhere."""
    r = load("06_edge", edge.Params, profile="gpu", machine=False)
    assert r.params.threads == [4]


def test_unknown_file_type_lists_the_allowed_ones(project):
    [msg] = _problems(overrides={"file_types": ["Q4_K_M", "Q3_K_XS"]})
    assert "key 'file_types[1]'" in msg and "unknown GGUF file type 'Q3_K_XS'" in msg
    assert "F16" in msg and "Q8_0" in msg and "Q4_K_M" in msg


def test_pretrained_weights_are_refused(project):
    [msg] = _problems(overrides={"weights": "pretrained", "models": ["deepseek-r1-distill-qwen-1.5b"]})
    assert "key 'weights'" in msg and "pretrained GGUF files are not supported" in msg


@pytest.mark.parametrize("cores, expected", [(1, [1]), (2, [1, 2]), (6, [1, 2, 4, 6]), (16, [1, 2, 4, 8, 16])])
def test_auto_thread_counts(cores, expected):
    assert edge.thread_counts("auto", cores) == expected


def test_context_is_the_request_rounded_up_to_256():
    assert edge.n_ctx(edge.EdgeWorkload(input_len=100, output_len=512)) == 768  # 612 -> 3 x 256
    assert edge.n_ctx(edge.EdgeWorkload(input_len=128, output_len=128)) == 256


def test_plan_builds_files_then_runs_llama_cpp_after_the_gpu_work(project, monkeypatch):
    monkeypatch.setattr(checks, "cores_present", lambda: (2, "2 cores"))
    p = _load().params
    edge_jobs = edge.jobs(p)
    # 2 real models x 2 file types measured on disk; 2 tiny models x 3 types x threads 1, 2 run
    assert sum(isinstance(j, GgufFileJob) for j in edge_jobs) == 4
    assert sum(isinstance(j, EdgeJob) for j in edge_jobs) == 12
    from slmstudy.experiments import serving

    gpu_like = [j for j in serving.jobs(load("04_serving", serving.Params, profile="cpu").params)]
    ordered = plan.build([*edge_jobs, *gpu_like])
    kinds = [type(j) for j in ordered]
    last_server = max(i for i, k in enumerate(kinds) if k in (ServeJob, EngineJob))
    first_file = kinds.index(GgufFileJob)
    first_edge = kinds.index(EdgeJob)
    assert last_server < first_file < first_edge
    assert ordered[first_edge].key == "tiny-qwen2__gguf-F16__t1"


def test_a_job_measured_with_more_repetitions_satisfies_one_asking_fewer():
    spec = edge.EdgeSpec(model="tiny-qwen2", file_type="Q4_K_M", threads=2)
    more = EdgeJob(engine=spec, point=edge.EdgePoint(input_len=100, output_len=512, repetitions=5, warmup=1))
    fewer = EdgeJob(engine=spec, point=edge.EdgePoint(input_len=100, output_len=512, repetitions=3, warmup=1))
    other = EdgeJob(engine=spec.model_copy(update={"threads": 1}), point=fewer.point)
    assert more.satisfies(fewer) and not fewer.satisfies(more) and not more.satisfies(other)


# ----------------------------------------------------------------- analyses
def _files() -> pd.DataFrame:
    return pd.DataFrame([
        {"model": "deepseek-r1-distill-qwen-1.5b", "file_type": "Q4_K_M", "size_bytes": 1_120_000_000,
         "bytes_read_per_token": 1_000_000_000},
        {"model": "llama-3.2-1b-instruct", "file_type": "Q4_K_M", "size_bytes": 820_000_000,
         "bytes_read_per_token": 700_000_000},
    ])


def test_claimed_speeds_come_from_the_claims_file():
    got = edge.claimed_speeds().set_index("claim")["claimed_tok_s"].to_dict()
    # article 001's table: ~120 (iPhone), ~165 (M1), ~62 (RK3588), and the RK3588 row's own 512 tokens / 16 s = 32
    assert got == {"a001-speed-iphone": 120.0, "a001-speed-m1": 165.0, "a001-speed-rk3588": 62.0,
                   "a001-speed-rk3588-consistency": 32.0}


def test_device_needs_known_answers():
    out = edge.device_needs(edge.claimed_speeds(), _files(), catalog.devices()).set_index("claim")
    # 120 tok/s x 1.0 GB per token = 120 GB/s; the A17 Pro's 51.2 GB/s -> 234% -> 2.3x
    iphone = out.loc["a001-speed-iphone"]
    assert iphone["needed_gb_s"] == pytest.approx(120.0)
    assert iphone["needed_pct_of_published"] == pytest.approx(234.375)
    assert iphone["verdict"] == "impossible: needs 2.3x the device's memory bandwidth"
    # 32 tok/s x 1.0 GB = 32 GB/s of the RK3588's 33.8 GB/s -> 95%: implausible, not impossible
    table_speed = out.loc["a001-speed-rk3588-consistency"]
    assert table_speed["needed_pct_of_published"] == pytest.approx(94.67, abs=0.01)
    assert table_speed["verdict"].startswith("implausible: needs 95%")


def test_bandwidth_verdict_boundaries():
    assert edge.bandwidth_verdict(40, 100) == "possible: needs 40% of the device's peak bandwidth"
    assert edge.bandwidth_verdict(81, 100).startswith("implausible")
    assert edge.bandwidth_verdict(101, 100).startswith("impossible: needs 1.0x")


def test_size_claims_are_judged_from_the_measured_files():
    out = edge.size_claims(_files(), "test").set_index("id")
    # 1.12 GB against "about 0.8 GB": 40% more, outside the 10% of "about"
    assert out.loc["a000-gguf-q4-deepseek", "verdict"] == "contradicted"
    assert out.loc["a001-gguf-q4", "verdict"] == "contradicted"
    # 0.82 GB against "about 0.6 GB": 37% more
    assert out.loc["a000-gguf-q4-llama", "verdict"] == "contradicted"
    close = _files().assign(size_bytes=[840_000_000, 630_000_000])  # 0.84 and 0.63 GB: within 10%
    again = edge.size_claims(close, "test").set_index("id")
    assert set(again["verdict"]) == {"holds"}


def test_speed_table_mean_and_ci_by_hand():
    runs = pd.DataFrame({"model": "m", "file_type": "Q4_K_M", "threads": 2, "gen_tok_s": [10.0, 12.0, 14.0],
                         "prompt_tok_s": [100.0, 100.0, 100.0]})
    row = edge.speed_table(runs).iloc[0]
    # mean 12, s = 2, t(0.975, 2) = 4.3027: half-width 4.3027 x 2 / sqrt(3) = 4.968
    assert row["gen_tok_s"] == 12.0
    assert row["gen_tok_s_lo"] == pytest.approx(12 - 4.968, abs=1e-3)
    assert row["n"] == 3


def test_achieved_bandwidth_is_speed_times_bytes_per_token():
    speed = pd.DataFrame({"model": ["deepseek-r1-distill-qwen-1.5b"], "file_type": ["Q4_K_M"], "threads": [4],
                          "gen_tok_s": [25.0]})
    out = edge.achieved_bandwidth(speed, _files()).iloc[0]
    assert out["achieved_gb_s"] == pytest.approx(25.0)  # 25 tok/s x 1.0 GB
