"""The hardware-limit model on cases worked out by hand (DeepSeek-R1-Distill-Qwen-1.5B,
bf16, at 3.0 TB/s and 700 TFLOP/s): a decode step, a compute-bound prefill and a
whole request. The README's "% of the hardware bound" rests on these numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from slmstudy import roofline
from slmstudy.hardware import datasheet_for

DS = "deepseek-r1-distill-qwen-1.5b"
LL = "llama-3.2-1b-instruct"
HW = {"bandwidth_tbs": 3.0, "tflops": {"bf16": 700.0, "fp32": 50.0, "int8": 1400.0, "fp8": 1400.0}}
LIM = roofline.limits_for(HW, "bf16")

# Bytes every DeepSeek decode step reads, besides the batch's embedding rows and KV
# cache: all bf16 weights (2 * 1,777,088,000) but the untied input embedding table
# (151,936 * 1536 * 2 = 466,747,392 bytes), of which only the batch's rows are read.
WEIGHTS_READ = 3_554_176_000 - 466_747_392


def test_decode_step_at_batch_1():
    s = roofline.step_bounds(DS, "bf16", batch=1, context=0, limits=LIM)
    # 1 embedding row (1536 * 2 bytes) and one token of KV cache (28,672 bytes)
    assert s["bytes"] == WEIGHTS_READ + 3_072 + 28_672 == 3_087_460_352
    assert s["t_mem_s"] == pytest.approx(3_087_460_352 / 3e12)  # 1.0292 ms: memory-bound
    assert s["t_compute_s"] == pytest.approx(3_087_138_816 / 700e12)  # 4.4 us
    assert s["t_step_s"] == s["t_mem_s"]


def test_llama_reads_its_tied_table_in_full():
    s = roofline.step_bounds(LL, "bf16", batch=1, context=0, limits=LIM)
    assert s["bytes"] == 2 * 1_235_814_400 + 32_768  # every weight once (the table is the lm_head) + 1 token of KV


def test_large_batches_read_kv_and_rows_per_sequence():
    small = roofline.step_bounds(DS, "bf16", 1, 256, LIM)
    big = roofline.step_bounds(DS, "bf16", 1024, 256, LIM)
    # 1023 more sequences: their KV caches (257 tokens each) and their embedding rows
    assert big["bytes"] - small["bytes"] == 1023 * 257 * 28_672 + 1023 * 1536 * 2
    # 1024 * (3,087,138,816 + 172,032 * 256) FLOPs at 700 TFLOP/s: 4.58 ms, now compute-bound
    assert big["t_compute_s"] == pytest.approx(1024 * (3_087_138_816 + 172_032 * 256) / 700e12)
    assert big["t_step_s"] == big["t_compute_s"]


def test_prefill_of_64_prompts_is_compute_bound():
    p = roofline.prefill_bound(DS, "bf16", batch=64, input_len=128, limits=LIM)
    # causal attention: on average half the prompt (64 tokens) per token
    flops = 64 * 128 * (3_087_138_816 + 172_032 * 64)
    assert p["prefill_flops"] == flops == 25_380_035_493_888
    assert p["t_prefill_s"] == pytest.approx(flops / 700e12) == pytest.approx(0.036257, rel=1e-4)


def test_request_bound_batch_1_and_64():
    # batch 1, 128 in / 256 out: prefill is memory-bound (1.0305 ms), then 255 steps at
    # the mean context 256 (bytes WEIGHTS_READ + 3,072 + 257 * 28,672: 1.0316 ms each)
    b1 = roofline.request_bound(DS, "bf16", 1, 128, 256, LIM)
    assert b1["t_total_s"] == pytest.approx(0.26408853, rel=1e-6)
    assert b1["bound_tok_s"] == pytest.approx(969.372, rel=1e-5)
    # batch 64: a 36.26 ms prefill, then 255 steps of 1.1864 ms (3,559,222,272 bytes)
    b64 = roofline.request_bound(DS, "bf16", 64, 128, 256, LIM)
    assert b64["t_total_s"] == pytest.approx(0.036257194 + 255 * 0.001186407, rel=1e-6)
    assert b64["bound_tok_s"] == pytest.approx(48_360.19, rel=1e-5)


def test_attach_fraction_is_measured_over_bound():
    runs = pd.DataFrame([{"model": DS, "precision": "bf16", "batch": 1, "input_len": 128, "output_len": 256,
                          "output_tok_s": 387.75, "tpot_mean_s": 0.0025}])
    out = roofline.attach(runs, HW).iloc[0]
    assert out["achieved_fraction"] == pytest.approx(387.75 / 969.372, rel=1e-5)  # 40.0%
    assert out["step_fraction"] == pytest.approx(1.0316e-3 / 0.0025, rel=1e-3)
    assert out["decode_bound"] == "memory" and not out["bound_exceeded"]


def test_fewer_bytes_per_weight_raise_the_decode_bound():
    bounds = {p: roofline.request_bound(DS, p, 1, 128, 256, roofline.limits_for(HW, p))["bound_tok_s"]
              for p in ("fp32", "bf16", "int8")}
    assert bounds["fp32"] < bounds["bf16"] < bounds["int8"]


def test_datasheet_lookup_by_nvml_name():
    assert datasheet_for("NVIDIA H100 80GB HBM3")["bf16"] == pytest.approx(989.4)
    assert datasheet_for("some other device") == {}
    assert datasheet_for(None) == {}
