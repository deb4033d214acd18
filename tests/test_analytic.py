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


def test_four_bit_weights_by_hand():
    # W4A16: the projections take half a byte per weight (8 to an int32) plus one
    # bf16 scale per group of 128 input features of each output channel; embeddings,
    # lm_head, norms and biases stay bf16.
    # DeepSeek: 28 * 46,792,704 = 1,310,195,712 projection weights -> 655,097,856 bytes;
    # every input size (1536 = 12 x 128, 8960 = 70 x 128) is whole groups, so
    # 46,792,704 / 128 = 365,568 groups per layer, x 28 = 10,235,904 scales -> 20,471,808 bytes;
    # the 16-bit rest (466,747,392 + 28 * 5,120 + 1536) * 2 = 933,784,576 bytes.
    rest = (466_747_392 + 28 * 5_120 + 1536) * 2
    assert rest == 933_784_576
    # int4 (compressed-tensors, symmetric): each of the 4 fused modules per layer (qkv, o,
    # gate_up, down) also keeps its unpacked shape, an int64 pair: 28 * 4 * 16 = 1,792 bytes
    int4 = 655_097_856 + 20_471_808 + 1_792 + rest
    assert _facts(DS, "int4").weight_bytes == int4 == 1_609_356_032
    # awq: a 4-bit zero point per scale (8 to an int32): 10,235,904 / 2 = 5,117,952 bytes
    awq = 655_097_856 + 20_471_808 + 5_117_952 + rest
    assert _facts(DS, "awq").weight_bytes == awq == 1_614_472_192
    # vLLM's "model weights" also hold the rope cache (131,072 x 128 x 2 bytes = 32 MiB):
    # 1.5301 and 1.5348 GiB. The H100 probe (vLLM 0.26.0, Machete kernel) reported 1.56 and
    # 1.59 GiB: the analytic figures are 1.9% and 3.5% below. Machete turns AWQ's packed zero points into bf16
    # (scale x zero) per group and channel, 1.5 bytes more each: 15,353,856 bytes
    # (0.014 GiB); the rest (0.03-0.04 GiB) is DeepSeek's excess over the analytic model that
    # every precision of the H100 references shows (bf16 +0.11, int8 +0.06, fp8 +0.09 GiB).
    assert _facts(DS, "int4").weights_gib == pytest.approx(1.56, rel=0.05)
    assert _facts(DS, "awq").weights_gib == pytest.approx(1.59, rel=0.05)
    assert _facts(DS, "int4").weights_gib == pytest.approx((int4 + 33_554_432) / 2**30) == pytest.approx(1.5301, abs=1e-4)
    assert _facts(DS, "awq").weights_gib == pytest.approx(1.5348, abs=1e-4)

    # Llama: 16 * 60,817,408 = 973,078,528 weights -> 486,539,264 bytes; 60,817,408 / 128 =
    # 475,136 groups per layer (2048 = 16 x 128, 8192 = 64 x 128), x 16 = 7,602,176 scales
    # -> 15,204,352 bytes; the 16-bit rest: the tied table 262,668,288 + norms 16 * 4096 + 2048
    # = 262,735,872 weights -> 525,471,744 bytes.
    rest = (262_668_288 + 16 * 4096 + 2048) * 2
    assert rest == 525_471_744
    assert _facts(LL, "int4").weight_bytes == 486_539_264 + 15_204_352 + 16 * 4 * 16 + rest == 1_027_216_384
    assert _facts(LL, "awq").weight_bytes == 486_539_264 + 15_204_352 + 3_801_088 + rest == 1_031_016_448
    # plus the rope cache 131,072 x 64 x 2 = 16 MiB: 0.9723 and 0.9758 GiB
    assert _facts(LL, "int4").weights_gib == pytest.approx(0.9723, abs=1e-4)
    assert _facts(LL, "awq").weights_gib == pytest.approx(0.9758, abs=1e-4)

    # tiny-qwen2 (the CPU engine test's model): 245,760 projection weights per layer ->
    # 122,880 bytes, 1,920 groups -> 3,840 bytes of scales; x 2 layers; the 16-bit rest
    # (2 * 151,936 * 128 + 2 * 512 + 128) * 2 = 77,793,536 bytes
    assert _facts("tiny-qwen2", "int4").weight_bytes == 2 * (122_880 + 3_840 + 64) + 77_793_536 == 78_047_104
    assert _facts("tiny-qwen2", "awq").weight_bytes == 2 * (122_880 + 3_840 + 960) + 77_793_536 == 78_048_896


@pytest.mark.parametrize("key", ["int4", "awq"])
def test_four_bit_scales_agree_with_the_quantization_config(key):
    # the analytic model reads weight_scales; vLLM reads quantization_config: the same groups
    prec = catalog.precision(key)
    qc = prec.quantization_config
    assert prec.weight_scales is not None and prec.weight_scales.per == "group"
    if qc["quant_method"] == "awq":
        group, bits, zero = qc["group_size"], qc["bits"], qc["zero_point"]
    else:
        [weights] = [g["weights"] for g in qc["config_groups"].values()]
        group, bits, zero = weights["group_size"], weights["num_bits"], not weights["symmetric"]
    assert (prec.weight_scales.group_size, prec.weight_bits, prec.weight_scales.zero_points) == (group, bits, zero)


def test_group_size_must_divide_every_input_size():
    arch = analytic.Architecture.from_config(catalog.model(DS).hf_config())
    assert arch.linear_groups_per_layer(128) == 46_792_704 // 128
    with pytest.raises(ValueError, match="does not divide 8960"):
        arch.linear_groups_per_layer(512)  # 1536 = 3 x 512, but 8960 = 17.5 x 512


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


# --- GGUF Q4_K_M in vLLM (vllm-gguf-plugin): the file's blocks as they are ------------------------

@pytest.fixture(scope="module")
def gguf_cache(tmp_path_factory):
    """A private cache for the GGUF builds, as in test_gguf_files."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SLMSTUDY_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def _vllm_bytes_from_file_plan(model: str, file_type: str = "Q4_K_M") -> tuple[int, int]:
    """(the file's tensor bytes, what vLLM's GGUF loader allocates for them), worked out
    tensor by tensor from the file's own plan, not from the analytic model:
    the F32 norms and biases become bf16 parameters, llama3's rope_freqs is not loaded,
    the shards of qkv_proj and gate_up_proj are padded to the widest shard's row bytes
    while the loaded shards stay allocated too (vllm-gguf-plugin 0.0.5), and each
    quantised module keeps a uint8 ggml type id per shard (7 a layer, 1 for the
    embedding, 1 for an untied lm_head)."""
    from slmstudy.gguf_files.layout import plan
    from slmstudy.gguf_files.types import file_type as lookup

    cfg = catalog.model(model).hf_config()
    arch = analytic.Architecture.from_config(cfg)
    assert arch.vocab % 64 == 0  # vLLM pads the vocabulary to 64 rows: nothing to pad here
    tensors = plan(cfg, lookup(file_type))
    by_name = {t.name: t for t in tensors}
    file_bytes = sum(t.nbytes for t in tensors)
    one_d = [t for t in tensors if len(t.ne) == 1]
    vllm = file_bytes - sum(t.nbytes for t in one_d)
    vllm += 2 * sum(t.n_elements for t in one_d if t.role != "rope_freqs")
    for i in range(arch.layers):
        for fused in (("attn_q", "attn_k", "attn_v"), ("ffn_gate", "ffn_up")):
            shards = [by_name[f"blk.{i}.{name}.weight"] for name in fused]
            widest = max(t.nbytes // t.n_rows for t in shards)
            vllm += sum(t.n_rows * widest - t.nbytes for t in shards)
    vllm += _kept_shards(model, file_type)
    vllm += 7 * arch.layers + (1 if arch.tied_embeddings else 2)
    return file_bytes, vllm


def _kept_shards(model: str, file_type: str = "Q4_K_M") -> int:
    """The file's bytes of every fused module's shards (q, k, v, gate, up)."""
    from slmstudy.gguf_files.layout import plan
    from slmstudy.gguf_files.types import file_type as lookup

    fused = ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up")
    return sum(t.nbytes for t in plan(catalog.model(model).hf_config(), lookup(file_type))
               if any(t.name.endswith(f".{name}.weight") for name in fused))


def test_gguf_weights_by_hand():
    # DeepSeek Q4_K_M (test_gguf_files: output, and attn_v/ffn_down of the 14 use_more_bits
    # layers in Q6_K, every other 2-D tensor Q4_K). Row bytes: 1536 wide Q4_K 6 x 144 = 864,
    # Q6_K 6 x 210 = 1260; 8960 wide Q4_K 35 x 144 = 5040, Q6_K 35 x 210 = 7350.
    # token_embd 151,936 x 864 = 131,272,704; output 151,936 x 1260 = 191,439,360.
    # A plain layer: q 1536 x 864 + k, v 2 x 256 x 864 + o 1536 x 864 + gate, up 2 x 8960 x 864
    #   + down 1536 x 5040 = 26,320,896 (qkv all Q4_K: no padding).
    # A use_more_bits layer: v 256 x 1260, down 1536 x 7350: 29,970,432 in the file; vLLM pads
    #   qkv to 2048 rows x 1260 = 2,580,480 instead of 1,327,104 + 221,184 + 322,560: +709,632.
    # ggml type ids: 7 bytes a layer + embedding + lm_head; norms and biases
    #   (28 x (2 x 1536 + 2048) + 1536 = 144,896) in bf16: 289,792 (579,584 in the file's F32).
    ds = 131_272_704 + 191_439_360 + 14 * 26_320_896 + 14 * (29_970_432 + 709_632) + 28 * 7 + 2 + 289_792
    # The plugin keeps the fused modules' shards a second time, unpadded: q, k, v, gate, up
    #   1,327,104 + 2 x 221,184 + 2 x 7,741,440 = 17,252,352 a plain layer, and with v
    #   256 x 1260 = 322,560 17,353,728 a use_more_bits layer.
    copies = 14 * 17_252_352 + 14 * 17_353_728
    assert _facts(DS, "gguf-q4_k_m").weight_bytes == ds == 1_121_015_494  # what a step reads
    assert _facts(DS, "gguf-q4_k_m").unread_weight_bytes == copies == 484_485_120
    # plus the rope cache (32 MiB), as for every precision: 1.5265 GiB (vLLM on the H100:
    # 1.5330), where the file's blocks alone would be 1.0753
    assert _facts(DS, "gguf-q4_k_m").weights_gib == pytest.approx(1.5265, abs=1e-4)
    # Llama Q4_K_M: tied, so token_embd is the output matrix in Q6_K: 128,256 x 8 x 210 = 215,470,080.
    # 2048 wide: Q4_K 1152, Q6_K 1680 bytes a row; 8192 wide: 4608 and 6720.
    # A plain layer: q 2048 x 1152 + k, v 2 x 512 x 1152 + o 2048 x 1152 + gate, up, down 3 x 9,437,184
    #   = 34,209,792; a use_more_bits layer (8 of 16): v 512 x 1680, down 2048 x 6720 -> 38,805,504,
    #   and qkv padded to 3072 x 1680 = 5,160,960 instead of 3,809,280: +1,351,680.
    # norms 16 x 4096 + 2048 = 67,584 in bf16; rope_freqs (F32 in the file) not loaded.
    ll = 215_470_080 + 1 + 8 * (34_209_792 + 7) + 8 * (38_805_504 + 1_351_680 + 7) + 67_584 * 2
    # shards kept: q 2,359,296 + k, v 2 x 589,824 + gate, up 2 x 9,437,184 = 22,413,312, and
    # with v 512 x 1680 = 860,160 22,683,648 a use_more_bits layer
    copies = 8 * 22_413_312 + 8 * 22_683_648
    assert _facts(LL, "gguf-q4_k_m").weight_bytes == ll == 810_541_169
    assert _facts(LL, "gguf-q4_k_m").unread_weight_bytes == copies == 360_775_680
    assert _facts(LL, "gguf-q4_k_m").weights_gib == pytest.approx(1.1065, abs=1e-4)
    # tiny-qwen2 (test_gguf_files: the file's tensors are 34,379,776 bytes): its 4,608 bytes of
    # F32 norms and biases are 2,304 in bf16; layer 1's qkv (q, k Q5_0 at 88 bytes a row, v Q8_0
    # at 136) is padded to 256 rows x 136 = 34,816 instead of 25,600: +9,216; 2 x 7 + 2 type ids;
    # its fused shards kept a second time: _vllm_bytes_from_file_plan below
    tiny_file, tiny_vllm = _vllm_bytes_from_file_plan("tiny-qwen2")
    tiny = _facts("tiny-qwen2", "gguf-q4_k_m")
    assert (tiny.weight_bytes, tiny.unread_weight_bytes) == (tiny_vllm - _kept_shards("tiny-qwen2"), _kept_shards("tiny-qwen2"))
    assert tiny.weight_bytes == 34_379_776 - 4_608 + 2_304 + 9_216 + 16 == 34_386_704


@pytest.mark.parametrize("model", [DS, LL])
def test_gguf_weights_follow_the_files_tensor_plan(model):
    # The real models' files are 0.8-1.1 GB to write: build() sums its tensor_bytes from this
    # same plan (test_gguf_files checks the written bytes on the tiny models).
    file_bytes, vllm = _vllm_bytes_from_file_plan(model)
    facts = _facts(model, "gguf-q4_k_m")
    assert facts.weight_bytes + facts.unread_weight_bytes == vllm
    if model == DS:
        # 1,111,370,240 in the file, less 289,792 for F32 -> bf16, plus 9,934,848 of padding,
        # 198 ids and the 484,485,120 bytes of fused shards kept a second time
        assert file_bytes == 1_111_370_240 and vllm == file_bytes - 289_792 + 9_934_848 + 198 + 484_485_120


def test_gguf_weights_follow_the_built_file(gguf_cache):
    from slmstudy.gguf_files import build

    f = build("tiny-qwen2", "Q4_K_M")
    file_bytes, vllm = _vllm_bytes_from_file_plan("tiny-qwen2")
    assert f.tensor_bytes == file_bytes == 34_379_776
    facts = _facts("tiny-qwen2", "gguf-q4_k_m")
    assert facts.weight_bytes + facts.unread_weight_bytes == vllm


def test_every_gguf_precision_names_a_known_file_type():
    from slmstudy.catalog import gguf_types

    ggufs = [p for p in catalog.precisions().values() if p.gguf_file_type]
    assert ggufs, "the catalog should hold a GGUF precision"
    for p in ggufs:
        assert gguf_types.file_type(p.gguf_file_type).name == p.gguf_file_type
        assert p.engines["cpu"].unsupported and p.engines["cuda"].requires == ("vllm_gguf_plugin",)


def test_analytic_imports_no_gguf():
    # gguf-py takes over a second to import: the analytic model loads it only for a GGUF precision
    import subprocess
    import sys

    code = "import sys, slmstudy.analytic; assert 'gguf' not in sys.modules, 'analytic imported gguf'"
    subprocess.run([sys.executable, "-c", code], check=True)
