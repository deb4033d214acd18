"""The analytic model against independent counts: the parameters of the same
architecture instantiated by Hugging Face transformers (on the meta device, so
nothing is allocated), and the published sizes of the two models."""

from __future__ import annotations

import pytest

from slmstudy import analytic, catalog

MODELS = ["deepseek-r1-distill-qwen-1.5b", "llama-3.2-1b-instruct", "tiny-qwen2", "tiny-llama3"]


@pytest.mark.parametrize("key", MODELS)
def test_parameter_count_matches_transformers(key):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.AutoConfig.for_model(**catalog.model(key).hf_config())
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    expected = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    facts = analytic.model_facts(catalog.model(key).hf_config(), catalog.precision("bf16"))
    assert facts.params == expected


def test_published_sizes():
    ds = analytic.model_facts(catalog.model("deepseek-r1-distill-qwen-1.5b").hf_config(), catalog.precision("bf16"))
    ll = analytic.model_facts(catalog.model("llama-3.2-1b-instruct").hf_config(), catalog.precision("bf16"))
    assert round(ds.params / 1e9, 2) == 1.78  # the model card: 1.78B
    assert round(ll.params / 1e9, 2) == 1.24  # the model card: 1.24B
    # KV cache per token: layers x (K and V) x KV heads x head size x 2 bytes
    assert ds.kv_bytes_per_token == 28 * 2 * 2 * 128 * 2 == 28 * 1024
    assert ll.kv_bytes_per_token == 16 * 2 * 8 * 64 * 2 == 32 * 1024


def test_precisions_order_memory_as_expected():
    cfg = catalog.model("deepseek-r1-distill-qwen-1.5b").hf_config()
    gib = {p: analytic.model_facts(cfg, catalog.precision(p)).weights_gib for p in ("fp32", "bf16", "int8", "fp8")}
    assert gib["fp32"] == pytest.approx(2 * gib["bf16"], rel=0.01)
    # int8/fp8 quantise the projections only; the 0.47 GB of untied embeddings stay 16-bit
    assert gib["bf16"] * 0.55 < gib["int8"] < gib["bf16"] * 0.7
    assert gib["fp8"] == pytest.approx(gib["int8"], rel=0.01)
    fp32_kv = analytic.model_facts(cfg, catalog.precision("fp32")).kv_bytes_per_token
    assert fp32_kv == 2 * analytic.model_facts(cfg, catalog.precision("bf16")).kv_bytes_per_token
    assert analytic.model_facts(cfg, catalog.precision("bf16"), "fp8").kv_bytes_per_token == 28 * 1024 // 2


def test_unsupported_architecture_raises():
    with pytest.raises(ValueError, match="model_type"):
        analytic.Architecture.from_config({"model_type": "mamba"})
