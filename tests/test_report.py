"""The report over the committed H100 reference runs: its verdicts, counted and by
claim, so a change to the judge or to the measurement table shows here."""

from __future__ import annotations

import pytest

from slmstudy import paths
from slmstudy.experiments import claims_report, registry
from slmstudy.experiments.base import Study


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    # The layer the committed report was executed with: the H100 references (06_edge: the
    # GGUF files and llama.cpp on the GPU host's 16 cores).
    r = registry.resolve("00_report", "cpu", params_file=str(paths.params_dir() / "00_report" / "reference_h100.yaml"))
    study = Study(registry.experiment("00_report"), r, root=tmp_path_factory.mktemp("report"))
    runs = claims_report.find_runs(study)
    assert set(runs) == set(claims_report.SOURCES)
    return claims_report.claims_table(study, runs).set_index("id")


def test_verdict_counts(table):
    assert table["verdict"].value_counts().to_dict() == {
        "contradicted": 32, "untestable": 28, "holds": 24, "not supported": 2, "not comparable": 3}


@pytest.mark.parametrize("claim,verdict", [
    ("a000-speed-b1", "contradicted"),       # DeepSeek / Llama at batch 1: 0.78 (f98d106's H100 study)
    # batch-4 speed-up DeepSeek / Llama: f98d106's 3.92 [3.90, 3.94] vs 3.78 [3.51, 4.08] overlap
    # (6690548's were apart: holds; 59f487e's overlapped too): the claim's verdict moves with the host
    ("a000-concurrency-advantage", "not supported"),
    ("a000-ttft", "contradicted"),           # Llama's first token comes sooner, not DeepSeek's
    ("a000-kv-efficiency", "holds"),         # 28 KiB vs 32 KiB per token
    ("a001-speed-rk3588-consistency", "contradicted"),  # 512 tokens in 16 s is 32 tok/s, not 62
    ("a002-speed", "holds"),                 # INT8 generates faster than FP32 (FP32 / INT8 0.73)
    ("a001-speed-rtx3060", "not comparable"),  # an RTX 3060's number, shown beside an H100's
    ("a000-math-80", "untestable"),          # accuracy needs real weights and the data set
    ("a000-gguf-q4-deepseek", "contradicted"),  # the Q4_K_M file measures 1.12 GB, not ~0.8
    ("a000-gguf-q4-llama", "contradicted"),     # the stand-in's measures 0.80 GB, not ~0.6
    ("a001-speed-iphone-bandwidth", "contradicted"),  # the A17 Pro's 51.2 GB/s allows 59 tok/s at most, not 120
])
def test_verdicts_by_claim(table, claim, verdict):
    assert table.loc[claim, "verdict"] == verdict, table.loc[claim, "reason"]
