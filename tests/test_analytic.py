"""The analytic model against numbers computed by hand from the two real configs,
and against independent counts (transformers' own parameter count, the model
cards). Each expected value below is worked out in the comment beside it."""

from __future__ import annotations

import pytest

from slmstudy import analytic, catalog

DS, LL = "deepseek-r1-distill-qwen-1.5b", "llama-3.2-1b-instruct"
MODELS = [DS, LL, "tiny-qwen2", "tiny-llama3"]


def _facts(model: str, precision: str = "bf16", kv: str = "auto") -> analytic.ModelFacts:
    return analytic.model_facts(catalog.model(model).hf_config(), catalog.precision(precision), kv)


def test_deepseek_by_hand():
    f = _facts(DS)
    # hidden 1536, intermediate 8960, 28 layers, 12 heads / 2 KV heads of 128, vocab 151,936, untied, q/k/v biases.
    # per layer: q 1536*1536 + k,v 2*1536*256 + o 1536*1536 + gate/up/down 3*1536*8960 = 46,792,704 weights,
    # plus 2 norms of 1536 and biases 1536 + 2*256 = 5,120; x 28 = 1,310,339,072;
    # embedding and lm_head 2 * 151,936 * 1536 = 466,747,392; final norm 1536.
    assert f.params == 1_777_088_000
    assert f.params_non_embedding == 1_777_088_000 - 233_373_696
    assert f.weight_bytes == 2 * 1_777_088_000  # bf16
    assert f.rope_cache_bytes == 131_072 * 128 * 2  # max_position x head size x 2 bytes
    assert f.kv_bytes_per_token == 28 * 2 * 256 * 2 == 28_672  # layers x (K, V) x 2 heads x 128 x 2 bytes
    # 2 FLOPs per multiply-accumulate: 28 * 46,792,704 projection weights + the lm_head 233,373,696
    assert f.flops_per_token == 2 * (28 * 46_792_704 + 233_373_696) == 3_087_138_816
    assert f.attn_flops_per_token_per_ctx == 28 * 2 * 2 * 1536 == 172_032  # q.k and p.v, 2 FLOPs each


def test_llama_by_hand():
    f = _facts(LL)
    # hidden 2048, intermediate 8192, 16 layers, 32 heads / 8 KV heads of 64, vocab 128,256, tied, no biases.
    # per layer: 2*2048^2 + 2*2048*512 + 3*2048*8192 = 60,817,408 weights + 2 norms of 2048 = 60,821,504;
    # x 16 = 973,144,064; one embedding table 128,256 * 2048 = 262,668,288 (it is also the lm_head); norm 2048.
    assert f.params == 1_235_814_400
    assert f.kv_bytes_per_token == 16 * 2 * 512 * 2 == 32_768
    assert f.flops_per_token == 2 * (16 * 60_817_408 + 262_668_288) == 2_471_493_632
    assert f.attn_flops_per_token_per_ctx == 16 * 4 * 2048 == 131_072


def test_quantised_weights_by_hand():
    # int8 W8A8: the projections take one byte per weight plus a float32 scale per
    # output channel; embeddings, lm_head, norms and biases stay bf16.
    # out channels per layer: q 1536 + k,v 2*256 + o 1536 + gate,up 2*8960 + down 1536 = 23,040
    linear = 28 * 46_792_704
    expected = linear * 1 + 28 * 23_040 * 4 + (466_747_392 + 28 * 5_120 + 1536) * 2
    assert _facts(DS, "int8").weight_bytes == expected == 2_246_560_768  # 1,310,195,712 + 2,580,480 + 933,784,576
    # fp8 (dynamic, per tensor): one float32 scale per projection, 7 per layer
    assert _facts(DS, "fp8").weight_bytes == linear + 28 * 7 * 4 + (466_747_392 + 28 * 5_120 + 1536) * 2
    assert _facts(DS, "fp32").weight_bytes == 4 * 1_777_088_000
    assert _facts(DS, "bf16", "fp8").kv_bytes_per_token == 14_336
    assert _facts(DS, "fp32").kv_bytes_per_token == 57_344


@pytest.mark.parametrize("key", MODELS)
def test_parameter_count_matches_transformers(key):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.AutoConfig.for_model(**catalog.model(key).hf_config())
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    expected = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    assert _facts(key).params == expected


def test_unsupported_architecture_raises():
    with pytest.raises(ValueError, match="model_type"):
        analytic.Architecture.from_config({"model_type": "mamba"})
