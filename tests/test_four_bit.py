"""02_precision's four-bit comparison: the verdict follows the confidence
intervals and the sentence states the measured ratios (known answers by hand)."""

from __future__ import annotations

import pandas as pd

from slmstudy import analytic, catalog
from slmstudy.experiments import precision


def _summary(int4_tok_s: tuple[float, float, float], dram: bool = True) -> pd.DataFrame:
    rows = [
        {"model": "m", "precision": "bf16", "batch": 1, "output_tok_s": 400.0, "output_tok_s_lo": 390.0,
         "output_tok_s_hi": 410.0, "gpm_dram_bw_pct_mean": 60.0, "gpm_tensor_active_pct_mean": 5.0},
        {"model": "m", "precision": "int4", "batch": 1, "output_tok_s": int4_tok_s[0], "output_tok_s_lo": int4_tok_s[1],
         "output_tok_s_hi": int4_tok_s[2], "gpm_dram_bw_pct_mean": 20.0, "gpm_tensor_active_pct_mean": 9.0},
    ]
    df = pd.DataFrame(rows)
    return df if dram else df.drop(columns=["gpm_dram_bw_pct_mean", "gpm_tensor_active_pct_mean"])


WEIGHTS = {("m", "bf16"): 4_000, ("m", "int4"): 1_100}


def test_slower_when_the_intervals_separate_below():
    row = precision.four_bit_table(_summary((340.0, 330.0, 350.0)), WEIGHTS).iloc[0]
    assert row["speed_ratio"] == 0.85 and row["weight_bytes_ratio"] == 0.275  # 340/400, 1100/4000
    assert row["why"].startswith("slower (0.85x) although each step reads only 0.28x the weight bytes")
    assert "DRAM bandwidth 20% against 60% for bf16" in row["why"]
    assert "tensor-core activity 9% against 5% for bf16" in row["why"]


def test_faster_when_the_intervals_separate_above_and_overlap_is_no_verdict():
    fast = precision.four_bit_table(_summary((500.0, 480.0, 520.0)), WEIGHTS).iloc[0]
    assert fast["why"].startswith("faster (1.25x)")
    same = precision.four_bit_table(_summary((405.0, 395.0, 415.0), dram=False), WEIGHTS).iloc[0]
    assert same["why"].startswith("no difference beyond the 95% intervals (1.01x")
    assert "no GPM reading on this machine" in same["why"]


def test_deepseek_int4_reads_under_half_the_bf16_bytes():
    cfg = catalog.model("deepseek-r1-distill-qwen-1.5b").hf_config()
    b16 = analytic.model_facts(cfg, catalog.precision("bf16")).weight_bytes
    b4 = analytic.model_facts(cfg, catalog.precision("int4")).weight_bytes
    # the 16-bit embeddings and lm_head (2 x 151,936 x 1,536 x 2 bytes = 0.93 GB) stay, so not a quarter
    assert 0.40 < b4 / b16 < 0.47
