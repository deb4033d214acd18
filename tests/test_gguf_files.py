"""GGUF files with random weights: known answers worked out by hand from ggml's
block layouts and llama.cpp's quantization rules, read back with gguf-py, and
loaded by llama.cpp itself (xllamacpp) in the engine test.

Only the tiny models are built (a second or so each, in a throw-away cache); the
real architectures are checked through their tensor plan, which is what decides
every byte of tensor data.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from gguf import GGUFReader, GGMLQuantizationType, quants

from slmstudy import catalog
from slmstudy.gguf_files import FILE_TYPES, UnknownFileType, build
from slmstudy.gguf_files import blocks, writer
from slmstudy.gguf_files.layout import plan
from slmstudy.gguf_files.rope import llama3_rope_factors
from slmstudy.gguf_files.types import block_size, file_type, type_size, use_more_bits
from slmstudy.gguf_files.vocab import build_vocab

T = GGMLQuantizationType


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache, so these builds neither reuse nor disturb the study's files."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("cache")
    mp.setenv("SLMSTUDY_CACHE_DIR", str(root))
    yield root
    mp.undo()


def cfg(key: str) -> dict:
    return catalog.model(key).hf_config()


# --- file types and ggml sizes ---------------------------------------------------

def test_required_file_types_are_known():
    assert {"F16", "Q8_0", "Q4_K_M"} <= set(FILE_TYPES)


def test_unknown_file_type_names_the_allowed_ones():
    with pytest.raises(UnknownFileType, match=r"'Q3_X'.*F16.*Q8_0.*Q4_K_M") as err:
        build("tiny-qwen2", "Q3_X")
    assert isinstance(err.value, ValueError)


def test_block_sizes_are_ggmls():
    # ggml-common.h: block_q8_0 = fp16 d + 32 int8            = 2 + 32            = 34 B / 32
    #                block_q5_0 = fp16 d + 4 B qh + 16 B qs     = 2 + 4 + 16        = 22 B / 32
    #                block_q4_K = d, dmin + 12 B scales + 128 B = 2 + 2 + 12 + 128  = 144 B / 256
    #                block_q6_K = 128 ql + 64 qh + 16 scales + d = 128 + 64 + 16 + 2 = 210 B / 256
    assert (block_size(T.Q8_0), type_size(T.Q8_0)) == (32, 34)
    assert (block_size(T.Q5_0), type_size(T.Q5_0)) == (32, 22)
    assert (block_size(T.Q4_K), type_size(T.Q4_K)) == (256, 144)
    assert (block_size(T.Q6_K), type_size(T.Q6_K)) == (256, 210)


def test_use_more_bits_layers():
    # 28 layers: n/8 = 3, 7n/8 = 196/8 = 24 -> layers 0,1,2 and 24..27, plus those
    # in 3..23 with (i - 3) % 3 == 2: 5, 8, 11, 14, 17, 20, 23 -> 3 + 4 + 7 = 14 layers.
    assert [i for i in range(28) if use_more_bits(i, 28)] == [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]
    # 16 layers: n/8 = 2, 7n/8 = 14 -> 0, 1, 14, 15 and (i - 2) % 3 == 2: 4, 7, 10, 13 -> 8 layers.
    assert [i for i in range(16) if use_more_bits(i, 16)] == [0, 1, 4, 7, 10, 13, 14, 15]
    # 2 layers (the tiny models): n/8 = 0, 7n/8 = 14/8 = 1 -> only layer 1.
    assert [i for i in range(2) if use_more_bits(i, 2)] == [1]


# --- which tensor gets which type ------------------------------------------------

def test_deepseek_q4_k_m_tensor_types():
    tensors = plan(cfg("deepseek-r1-distill-qwen-1.5b"), file_type("Q4_K_M"))
    by_name = {t.name: t for t in tensors}
    more_bits = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]
    q6 = sorted(t.name for t in tensors if t.ggml_type is T.Q6_K)
    # output.weight (untied) + attn_v and ffn_down on the 14 use_more_bits layers = 1 + 14 + 14 = 29
    assert q6 == sorted(["output.weight"] + [f"blk.{i}.attn_v.weight" for i in more_bits]
                        + [f"blk.{i}.ffn_down.weight" for i in more_bits])
    # Every row length (1536 = 6 x 256, 8960 = 35 x 256) is a whole number of K blocks: no fallback.
    # Q4_K: token_embd + 28 x 7 projections - 28 promoted = 1 + 196 - 28 = 169.
    # F32: 28 x (2 norms + 3 biases) + output_norm = 141. Tensors: 1 + 1 + 1 + 28 x 12 = 339.
    counts = {name: sum(1 for t in tensors if t.ggml_type.name == name) for name in ("Q4_K", "Q6_K", "F32")}
    assert counts == {"Q4_K": 169, "Q6_K": 29, "F32": 141}
    assert len(tensors) == 339
    assert by_name["token_embd.weight"].ggml_type is T.Q4_K  # untied: no rule lifts it
    assert by_name["blk.3.attn_v.weight"].ggml_type is T.Q4_K
    assert by_name["blk.0.attn_q.bias"].ne == (1536,) and by_name["blk.0.attn_k.bias"].ne == (256,)
    assert by_name["token_embd.weight"].ne == (1536, 151936)
    assert by_name["blk.0.ffn_down.weight"].ne == (8960, 1536)


def test_llama_q4_k_m_tensor_types():
    tensors = plan(cfg("llama-3.2-1b-instruct"), file_type("Q4_K_M"))
    by_name = {t.name: t for t in tensors}
    # Tied embeddings: no output.weight; token_embd is typed as the output matrix -> Q6_K.
    assert "output.weight" not in by_name and by_name["token_embd.weight"].ggml_type is T.Q6_K
    # Q6_K: token_embd + 8 attn_v + 8 ffn_down = 17; Q4_K: 16 x 7 - 16 = 96;
    # F32: 16 x 2 norms + output_norm + rope_freqs = 34.
    counts = {name: sum(1 for t in tensors if t.ggml_type.name == name) for name in ("Q4_K", "Q6_K", "F32")}
    assert counts == {"Q4_K": 96, "Q6_K": 17, "F32": 34}
    assert by_name["rope_freqs.weight"].ne == (32,)  # head_dim 64 / 2
    assert by_name["blk.0.attn_k.weight"].ne == (2048, 512)  # 8 kv heads x 64


def test_f16_and_q8_0_keep_1d_tensors_in_f32():
    for ft, big in (("F16", T.F16), ("Q8_0", T.Q8_0)):
        tensors = plan(cfg("deepseek-r1-distill-qwen-1.5b"), file_type(ft))
        assert {t.ggml_type for t in tensors if len(t.ne) == 2} == {big}
        assert {t.ggml_type for t in tensors if len(t.ne) == 1} == {T.F32}


def test_tiny_q4_k_m_falls_back_on_128_wide_rows():
    # hidden 128 is not a multiple of 256: Q4_K -> Q5_0, Q6_K -> Q8_0 (tensor_type_fallback);
    # output.weight: 128 % 256 != 0 -> Q8_0 directly. ffn_down rows are 512 = 2 x 256: K types stay.
    types = {t.name: t.ggml_type for t in plan(cfg("tiny-qwen2"), file_type("Q4_K_M"))}
    assert types["token_embd.weight"] is T.Q5_0
    assert types["output.weight"] is T.Q8_0
    assert types["blk.0.attn_v.weight"] is T.Q5_0 and types["blk.1.attn_v.weight"] is T.Q8_0
    assert types["blk.0.ffn_down.weight"] is T.Q4_K and types["blk.1.ffn_down.weight"] is T.Q6_K


# --- built files, read back ------------------------------------------------------

# tiny-qwen2 by hand: hidden 128, vocab 151936, q 128, kv 2 x 32 = 64, ffn 512, 2 layers.
#   per layer 2-D: q 128*128 = 16384, k 8192, v 8192, o 16384, gate/up/down 65536 each = 245,760
#   embeddings: 151936*128 = 19,447,808, twice (untied output) = 38,895,616
#   all 2-D: 38,895,616 + 2 * 245,760 = 39,387,136 weights
#   1-D F32: 2 x (2 norms x 128 + biases 128 + 64 + 64) + output_norm 128 = 1152 floats = 4608 B
TINY_QWEN2_TENSOR_BYTES = {
    "F16": 39_387_136 * 2 + 4_608,  # = 78,778,880
    "Q8_0": 39_387_136 // 32 * 34 + 4_608,  # = 41,848,832 + 4,608 = 41,853,440
    # Q4_K_M: token_embd Q5_0 19,447,808/32*22 = 13,370,368; output Q8_0 /32*34 = 20,663,296;
    #   per layer q,k,o,gate,up (172,032 weights) Q5_0 = 118,272;
    #   layer 0: attn_v Q5_0 8192/32*22 = 5,632, ffn_down Q4_K 65536/256*144 = 36,864
    #   layer 1: attn_v Q8_0 8192/32*34 = 8,704, ffn_down Q6_K 65536/256*210 = 53,760
    "Q4_K_M": 13_370_368 + 20_663_296 + 2 * 118_272 + 5_632 + 36_864 + 8_704 + 53_760 + 4_608,  # = 34,379,776
}


@pytest.fixture(scope="module")
def qwen2_q4(cache):
    """tiny-qwen2 Q4_K_M and its GGUFReader (parsing 150k vocabulary strings takes seconds: once)."""
    f = build("tiny-qwen2", "Q4_K_M")
    return f, GGUFReader(f.path)


def test_tiny_qwen2_q4_k_m_file_is_header_plus_tensors(qwen2_q4):
    f, reader = qwen2_q4
    assert sum(t.n_bytes for t in reader.tensors) == TINY_QWEN2_TENSOR_BYTES["Q4_K_M"]
    # The file is the header (KV metadata + tensor infos, padded to 32) then the
    # tensors back to back, each padded to 32: nothing else, nothing missing.
    last = max(reader.tensors, key=lambda t: t.data_offset)
    assert f.size_bytes == os.stat(f.path).st_size == last.data_offset + -(-last.n_bytes // 32) * 32
    assert f.size_bytes == reader.data_offset + sum(-(-t.n_bytes // 32) * 32 for t in reader.tensors)
    assert f.n_params == 39_387_136 + 1_152
    assert f.bits_per_weight == pytest.approx(f.size_bytes * 8 / f.n_params)
    assert f.tensor_types == {"F32": 11, "Q4_K": 1, "Q5_0": 12, "Q6_K": 1, "Q8_0": 2}


@pytest.mark.parametrize("ft", ["F16", "Q8_0"])
def test_tiny_qwen2_file_bytes(qwen2_q4, ft):
    # The header of the F16 and Q8_0 files has the same keys, tensor names and
    # fixed-width fields as the Q4_K_M one (only values differ): same length.
    _, q4_reader = qwen2_q4
    f = build("tiny-qwen2", ft)
    assert f.size_bytes == q4_reader.data_offset + TINY_QWEN2_TENSOR_BYTES[ft]


def test_tiny_llama3_reads_back_as_planned(cache):
    c = cfg("tiny-llama3")
    f = build("tiny-llama3", "Q4_K_M")
    reader = GGUFReader(f.path)
    read = {t.name: (t.tensor_type, tuple(int(d) for d in t.shape)) for t in reader.tensors}
    expected = {t.name: (t.ggml_type, t.ne) for t in plan(c, file_type("Q4_K_M"))}
    assert read == expected  # GGUFReader.shape is ggml order (ne[0] first), as the plan
    assert f.tensor_types == {"F32": 6, "Q4_K": 1, "Q5_0": 11, "Q6_K": 1, "Q8_0": 2}

    def value(key):
        return reader.fields[key].contents()

    assert value("general.architecture") == "llama"
    assert "random weights" in value("general.name")
    assert value("general.file_type") == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert value("general.quantization_version") == 2
    assert value("llama.context_length") == 8192
    assert value("llama.embedding_length") == 128
    assert value("llama.block_count") == 2
    assert value("llama.feed_forward_length") == 512
    assert value("llama.attention.head_count") == 4
    assert value("llama.attention.head_count_kv") == 2
    assert value("llama.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)
    assert value("llama.rope.freq_base") == 500000.0
    assert value("llama.rope.dimension_count") == 32
    assert value("tokenizer.ggml.model") == "gpt2"
    assert value("tokenizer.ggml.pre") == "llama-bpe"
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == 128256
    assert len(reader.fields["tokenizer.ggml.token_type"].data) == 128256
    assert len(reader.fields["tokenizer.ggml.merges"].data) == 128000 - 256
    assert value("tokenizer.ggml.bos_token_id") == 128000
    assert value("tokenizer.ggml.eos_token_id") == 128001
    rope = reader.tensors[[t.name for t in reader.tensors].index("rope_freqs.weight")]
    np.testing.assert_array_equal(rope.data, llama3_rope_factors(c))


def test_build_is_cached(cache):
    first = build("tiny-llama3", "Q8_0")
    mtime = os.stat(first.path).st_mtime_ns
    again = build("tiny-llama3", "Q8_0")
    assert again == first and os.stat(again.path).st_mtime_ns == mtime
    assert build("tiny-llama3", "Q8_0", seed=1).path != first.path  # other weights, other file


def test_failed_build_leaves_nothing(cache, monkeypatch):
    calls = {"n": 0}
    real = writer._values

    def failing(t, c, rng):
        calls["n"] += 1
        if calls["n"] == 5:  # after some tensors have been written
            raise KeyboardInterrupt
        return real(t, c, rng)

    monkeypatch.setattr(writer, "_values", failing)
    with pytest.raises(KeyboardInterrupt):
        build("tiny-qwen2", "Q4_0")
    gguf_dir = cache / "slmstudy" / "gguf"
    assert not [p for p in gguf_dir.iterdir() if p.is_dir() and "__Q4_0__" in p.name]  # no folder, no temp folder
    monkeypatch.setattr(writer, "_values", real)
    assert build("tiny-qwen2", "Q4_0").size_bytes > 0


# --- values ------------------------------------------------------------------------

@pytest.mark.parametrize("t", [T.Q4_0, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K, T.F16, T.F32])
def test_random_weights_are_finite_and_small(t):
    data = blocks.random_weight(t, (512, 64), np.random.default_rng(0))
    w = quants.dequantize(data, t) if t not in (T.F16, T.F32) else data.astype(np.float32)
    assert w.size == 512 * 64 and np.isfinite(w).all()
    assert 0.01 < float(w.std()) < 0.04  # near the 0.02 of initializer_range
    assert abs(float(w.mean())) < 0.01


def test_random_weights_are_seeded():
    a = blocks.random_weight(T.Q4_K, (256, 8), np.random.default_rng(3))
    b = blocks.random_weight(T.Q4_K, (256, 8), np.random.default_rng(3))
    assert a.shape == (8, 144) and (a == b).all()


def test_llama3_rope_factors():
    # head_dim 64, theta 5e5: freq_i = theta^(-2i/64), wavelength 2*pi/freq_i.
    # wavelength < 8192/4 = 2048  <=>  i < ln(2048/(2*pi)) * 32 / ln(5e5) = 14.1: i = 0..14 keep 1;
    # wavelength > 8192/1 = 8192  <=>  i > ln(8192/(2*pi)) * 32 / ln(5e5) = 17.5: i = 18..31 get 32;
    # i = 15, 16, 17 are blended in between.
    f = llama3_rope_factors(cfg("llama-3.2-1b-instruct"))
    assert f.shape == (32,) and f.dtype == np.float32
    assert (f[:15] == 1).all() and (f[18:] == 32).all()
    assert ((f[15:18] > 1) & (f[15:18] < 32)).all() and (np.diff(f[15:18]) > 0).all()


def test_vocab_is_a_consistent_bpe_of_the_config_size():
    v = build_vocab(cfg("deepseek-r1-distill-qwen-1.5b"))
    assert len(v.tokens) == len(v.token_types) == 151936 == len(set(v.tokens))
    # 256 byte symbols + 151,387 merges = 151,643 ordinary tokens, as Qwen2's own vocabulary.
    assert len(v.merges) == 151643 - 256
    ids = {tok: i for i, tok in enumerate(v.tokens)}
    for merge in v.merges[:1000] + v.merges[-1000:]:
        left, right = merge.split(" ")
        assert left in ids and right in ids and ids[left + right] > max(ids[left], ids[right])
    assert v.tokens[151643] == "<|endoftext|>" and v.bos_id == v.eos_id == 151643
    assert v.tokens[ord("a")] == "a" and v.tokens[ord(" ")] == "Ġ"  # GPT-2 byte symbols
    assert v.pre == "qwen2" and v.token_types[151643] == 3 and v.token_types[1000] == 1


# --- llama.cpp ---------------------------------------------------------------------

@pytest.mark.engine
def test_llama_cpp_loads_and_generates(cache):
    xllamacpp = pytest.importorskip("xllamacpp")
    f = build("tiny-qwen2", "Q4_K_M")
    params = xllamacpp.CommonParams()
    params.model.path = str(f.path)
    params.n_ctx = 256
    params.n_parallel = 1
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.check_tensors = True  # llama.cpp validates every block (fp16 scales finite, ...)
    server = xllamacpp.Server(params)
    n = 12
    out = server.handle_completions({"prompt": list(range(1000, 1016)), "n_predict": n, "ignore_eos": True,
                                     "temperature": 0.0, "n_probs": 1})
    choice = out["choices"][0]
    assert out["usage"]["completion_tokens"] == n and choice["finish_reason"] == "length"
    logprobs = [c["logprob"] for c in choice["logprobs"]["content"]]
    assert len(logprobs) == n and all(math.isfinite(x) for x in logprobs)
