"""The hardware-limit model on hand-computable cases."""

from __future__ import annotations

import pandas as pd
import pytest

from slmstudy import analytic, catalog, roofline
from slmstudy.hardware import datasheet_for

DS = "deepseek-r1-distill-qwen-1.5b"
LL = "llama-3.2-1b-instruct"
H100 = {"bandwidth_tbs": 3.0, "tflops": {"bf16": 700.0, "fp32": 50.0, "int8": 1400.0, "fp8": 1400.0}}


def test_batch1_decode_is_memory_bound_and_reads_all_weights_once():
    lim = roofline.limits_for(H100, "bf16")
    step = roofline.step_bounds(LL, "bf16", batch=1, context=0, limits=lim)
    facts = analytic.model_facts(catalog.model(LL).hf_config(), catalog.precision("bf16"))
    # tied embeddings: the lm_head is the embedding table, read in full
    assert step["bytes"] == facts.weight_bytes + facts.kv_bytes_per_token
    assert step["t_mem_s"] > step["t_compute_s"]
    assert step["t_step_s"] == pytest.approx(step["bytes"] / 3.0e12)


def test_untied_input_embedding_is_not_read_per_step():
    lim = roofline.limits_for(H100, "bf16")
    cfg = catalog.model(DS).hf_config()
    facts = analytic.model_facts(cfg, catalog.precision("bf16"))
    step = roofline.step_bounds(DS, "bf16", batch=1, context=0, limits=lim)
    table = cfg["vocab_size"] * cfg["hidden_size"] * 2
    assert step["bytes"] == facts.weight_bytes - table + cfg["hidden_size"] * 2 + facts.kv_bytes_per_token


def test_large_batches_become_compute_bound_and_kv_reads_grow():
    lim = roofline.limits_for(H100, "bf16")
    small = roofline.step_bounds(DS, "bf16", 1, 256, lim)
    big = roofline.step_bounds(DS, "bf16", 1024, 256, lim)
    assert big["t_compute_s"] > small["t_compute_s"] * 1000
    # 1023 more sequences: their KV caches (257 tokens each) and their embedding rows
    assert big["bytes"] - small["bytes"] == 1023 * 257 * 28 * 1024 + 1023 * 1536 * 2


def test_request_bound_and_attach():
    runs = pd.DataFrame([{"model": DS, "precision": "bf16", "batch": 1, "input_len": 128, "output_len": 256,
                          "output_tok_s": 400.0, "tpot_mean_s": 0.0024}])
    out = roofline.attach(runs, H100)
    b = roofline.request_bound(DS, "bf16", 1, 128, 256, roofline.limits_for(H100, "bf16"))
    assert out["bound_tok_s"][0] == pytest.approx(b["bound_tok_s"])
    assert out["achieved_fraction"][0] == pytest.approx(400.0 / b["bound_tok_s"])
    assert 0 < out["achieved_fraction"][0] < 1
    assert out["decode_bound"][0] == "memory"


def test_fewer_bytes_per_weight_raise_the_decode_bound():
    bounds = {p: roofline.request_bound(DS, p, 1, 128, 256, roofline.limits_for(H100, p))["bound_tok_s"]
              for p in ("fp32", "bf16", "int8")}
    assert bounds["fp32"] < bounds["bf16"] < bounds["int8"]


def test_datasheet_lookup_by_nvml_name():
    assert datasheet_for("NVIDIA H100 80GB HBM3")["bf16"] == pytest.approx(989.4)
    assert datasheet_for("some other device") == {}
    assert datasheet_for(None) == {}
