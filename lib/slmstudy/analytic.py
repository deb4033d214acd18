"""Facts computed from a model's architecture config alone: parameter count,
weight bytes per precision, KV-cache bytes per token, FLOPs per token.

These are the numbers vLLM's own reports are checked against (weights GiB, KV
capacity) and the inputs of the hardware-limit (roofline) model. Only the dense
decoder families of the catalog (Qwen2, Llama) are described; anything else
raises rather than guessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .catalog import PrecisionSpec

GIB = 1024**3

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_SUPPORTED_TYPES = {"qwen2", "llama"}
# vLLM fuses the seven projections of a layer into four modules: qkv_proj, o_proj,
# gate_up_proj, down_proj (per-module tensors are counted per fused module).
_FUSED_MODULES_PER_LAYER = 4
# vLLM pads the rows of its embedding and lm_head to a multiple of 64
# (vocab_parallel_embedding.DEFAULT_VOCAB_PADDING_SIZE). The catalog's vocabularies are
# multiples already; only the GGUF count below, which follows vLLM tensor by tensor, pads.
_VOCAB_PADDING = 64
# ggml types vLLM's GGUF loader keeps unquantised, in the model dtype (plugin's UNQUANTIZED_TYPES)
_GGUF_UNQUANTISED = {"F32", "F16", "BF16"}


@dataclass(frozen=True)
class Architecture:
    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    qkv_bias: bool
    max_position: int

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "Architecture":
        model_type = cfg.get("model_type")
        if model_type not in _SUPPORTED_TYPES:
            raise ValueError(
                f"analytic model supports model_type {sorted(_SUPPORTED_TYPES)}, not {model_type!r}"
            )
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        return cls(
            model_type=model_type,
            hidden=hidden,
            intermediate=int(cfg["intermediate_size"]),
            layers=int(cfg["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads", heads)),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            vocab=int(cfg["vocab_size"]),
            tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            # Qwen2 always carries q/k/v biases; Llama only when attention_bias is set.
            qkv_bias=model_type == "qwen2" or bool(cfg.get("attention_bias", False)),
            max_position=int(cfg.get("max_position_embeddings", 4096)),
        )

    # --- parameter groups -------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def linear_params_per_layer(self) -> int:
        """Weights of the seven projections (q, k, v, o, gate, up, down), no biases."""
        return sum(k * n for k, n in self.projections)

    @property
    def linear_out_features_per_layer(self) -> int:
        """Output channels of those projections: the number of per-channel scales."""
        return sum(n for _, n in self.projections)

    @property
    def projections(self) -> list[tuple[int, int]]:
        """(input features, output features) of q, k, v, o, gate, up and down."""
        h, q, kv, i = self.hidden, self.q_dim, self.kv_dim, self.intermediate
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    def linear_groups_per_layer(self, group_size: int) -> int:
        """Scales of one layer's projections with one per ``group_size`` input
        features of each output channel."""
        for k, _ in self.projections:
            if k % group_size:
                raise ValueError(f"group size {group_size} does not divide {k} input features")
        return sum(n * (k // group_size) for k, n in self.projections)

    @property
    def small_params_per_layer(self) -> int:
        """Norm weights and q/k/v biases: kept in 16 bits by every quantisation."""
        bias = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        return 2 * self.hidden + bias

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        per_layer = self.linear_params_per_layer + self.small_params_per_layer
        return self.embedding_params + self.lm_head_params + self.layers * per_layer + self.hidden


@dataclass(frozen=True)
class ModelFacts:
    """Per model and precision; all sizes in bytes unless named otherwise."""

    params: int
    params_non_embedding: int
    weight_bytes: int  # what a forward pass computes with (the roofline reads these)
    rope_cache_bytes: int
    kv_bytes_per_token: int
    flops_per_token: int  # forward pass, excluding attention over the context
    attn_flops_per_token_per_ctx: int  # add this times the context length
    # allocated with the weights but never read (gguf_kept_shard_bytes)
    unread_weight_bytes: int = 0

    @property
    def weights_gib(self) -> float:
        """The weight memory the engine reports: all it allocates for the weights."""
        return (self.weight_bytes + self.unread_weight_bytes + self.rope_cache_bytes) / GIB

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights_gib"] = self.weights_gib
        d["kv_kib_per_token"] = self.kv_bytes_per_token / 1024
        return d


def kv_dtype_bytes(precision: PrecisionSpec, kv_cache_dtype: str = "auto") -> int:
    if kv_cache_dtype.startswith("fp8"):
        return 1
    return _DTYPE_BYTES[precision.dtype]


def _quantised_projection_bytes(arch: Architecture, precision: PrecisionSpec) -> int:
    """The projections' bytes as vLLM creates them for a quantised precision:
    ``weight_bits`` per weight (sub-byte weights packed into int32, 8 to an int32 at
    4 bits), plus the scales the catalog's ``weight_scales`` describe (per tensor:
    one per projection; per channel: one per output channel; per group: one per
    ``group_size`` input features of each output channel), plus a packed zero point
    per scale where there are zero points."""
    scales = precision.weight_scales
    if scales is None:
        raise ValueError(f"precision {precision.key!r} is quantised but names no weight_scales")
    if scales.per == "tensor":
        n_scales = len(arch.projections)
    elif scales.per == "channel":
        n_scales = arch.linear_out_features_per_layer
    else:
        n_scales = arch.linear_groups_per_layer(int(scales.group_size or 0))
    scale_bytes = _DTYPE_BYTES[scales.dtype or precision.dtype]
    per_layer = arch.linear_params_per_layer * precision.weight_bits // 8 + n_scales * scale_bytes
    if scales.zero_points:
        per_layer += n_scales * precision.weight_bits // 8
    if (precision.quantization_config or {}).get("format") == "pack-quantized":
        # compressed-tensors keeps each packed module's unpacked shape: an int64 pair
        per_layer += _FUSED_MODULES_PER_LAYER * 2 * 8
    return arch.layers * per_layer


def gguf_weight_bytes(cfg: dict[str, Any], file_type: str, dtype: str) -> int:
    """The weight bytes vLLM allocates for a GGUF file of ``file_type`` (vLLM 0.26 with
    vllm-gguf-plugin 0.0.5, whose loader and GGUF methods this follows):

    * every quantised 2-D tensor stays as the file's ggml blocks, a uint8 tensor of the
      same bytes (``GGUFLinearMethod``; the embedding and an untied lm_head too,
      ``GGUFEmbeddingMethod``, their rows padded as vLLM pads the vocabulary);
    * a fused module (qkv_proj, gate_up_proj) is one uint8 tensor of all its shards' rows
      at the widest shard's row bytes (``_create_padded_weight_param``): where Q4_K_M gives
      attn_v Q6_K but q and k Q4_K, the q and k rows are padded to Q6_K's width;
    * each quantised module keeps its shards' ggml type ids, one uint8 a shard;
    * F32/F16 tensors (norms, biases; any unquantised 2-D tensor) are loaded into
      parameters of the model dtype; llama3's ``rope_freqs`` is not loaded (vLLM computes
      the rotary table from the config, counted apart as the rope cache).

    The per-tensor ggml types are llama.cpp's, as ``gguf_files`` writes them
    (``catalog.gguf_types``)."""
    from .catalog import gguf_types  # gguf-py: a second to import, only for GGUF

    arch = Architecture.from_config(cfg)
    ft = gguf_types.file_type(file_type)
    act = _DTYPE_BYTES[dtype]
    C = gguf_types.Category

    def module(shards: list[tuple[gguf_types.Category, int]], k: int, layer: int | None) -> int:
        """One vLLM module made of the file's tensors ``shards`` (category, output rows),
        every one ``k`` input features wide (ggml shape (k, rows))."""
        types = [gguf_types.tensor_type(ft, cat, (k, n), layer, arch.layers, arch.tied_embeddings)
                 for cat, n in shards]
        rows = sum(n for _, n in shards)
        unquantised = [t.name in _GGUF_UNQUANTISED for t in types]
        if all(unquantised):
            return rows * k * act
        if any(unquantised):  # the plugin refuses such a module too
            raise ValueError(f"GGUF {file_type}: a fused module mixes quantised and unquantised shards {types}")
        return rows * max(gguf_types.row_bytes(t, k) for t in types) + len(shards)

    h, q, kv, ff = arch.hidden, arch.q_dim, arch.kv_dim, arch.intermediate
    vocab = -(-arch.vocab // _VOCAB_PADDING) * _VOCAB_PADDING
    total = module([(C.TOKEN_EMBD, vocab)], h, None)
    if not arch.tied_embeddings:
        total += module([(C.OUTPUT, vocab)], h, None)
    for i in range(arch.layers):
        total += module([(C.ATTENTION_Q, q), (C.ATTENTION_K, kv), (C.ATTENTION_V, kv)], h, i)
        total += module([(C.ATTENTION_OUTPUT, h)], q, i)
        total += module([(C.FFN_GATE, ff), (C.FFN_UP, ff)], h, i)
        total += module([(C.FFN_DOWN, h)], ff, i)
    return total + (arch.layers * arch.small_params_per_layer + arch.hidden) * act


def gguf_kept_shard_bytes(cfg: dict[str, Any], file_type: str) -> int:
    """Bytes vllm-gguf-plugin 0.0.5 keeps allocated besides the weights it computes with:
    every fused module's shards (q, k, v; gate, up) a second time, unpadded, as the file
    has them. ``_materialize_gguf_weight_parameter`` gives the new parameter a *copy* of
    the shard list and ``_create_padded_weight_param`` clears only that copy, so the
    loaded shards stay referenced. They occupy memory but no step reads them (the
    roofline's bytes leave them out). Measured on the H100 (2026-12-05, DeepSeek Q4_K_M):
    vLLM reported 1.533 GiB of weights, the blocks it computes with are 1.075 GiB and
    these copies 0.451 GiB (sum 1.527);
    ``outputs/reference/h100/logs/gpu_tests_gguf_3663624.log``."""
    from .catalog import gguf_types

    arch = Architecture.from_config(cfg)
    ft = gguf_types.file_type(file_type)
    C = gguf_types.Category
    fused = [(C.ATTENTION_Q, arch.q_dim), (C.ATTENTION_K, arch.kv_dim), (C.ATTENTION_V, arch.kv_dim),
             (C.FFN_GATE, arch.intermediate), (C.FFN_UP, arch.intermediate)]
    return sum(n * gguf_types.row_bytes(gguf_types.tensor_type(ft, cat, (arch.hidden, n), i, arch.layers,
                                                                arch.tied_embeddings), arch.hidden)
               for i in range(arch.layers) for cat, n in fused)


def model_facts(cfg: dict[str, Any], precision: PrecisionSpec, kv_cache_dtype: str = "auto") -> ModelFacts:
    arch = Architecture.from_config(cfg)
    act = _DTYPE_BYTES[precision.dtype]
    linear = arch.layers * arch.linear_params_per_layer
    small = arch.layers * arch.small_params_per_layer + arch.hidden
    embeddings = arch.embedding_params + arch.lm_head_params
    unread = 0
    if precision.gguf_file_type:
        weight_bytes = gguf_weight_bytes(cfg, precision.gguf_file_type, precision.dtype)
        unread = gguf_kept_shard_bytes(cfg, precision.gguf_file_type)
    elif precision.quantization_config or precision.quantization:
        # Quantised projections; embeddings, lm_head, norms and biases stay in the
        # activation dtype.
        weight_bytes = _quantised_projection_bytes(arch, precision) + (embeddings + small) * act
    else:
        weight_bytes = (linear + small + embeddings) * act
    # vLLM keeps one cos/sin table of max_position x head_dim in the model dtype.
    rope = arch.max_position * arch.head_dim * act
    kv = arch.layers * 2 * arch.kv_dim * kv_dtype_bytes(precision, kv_cache_dtype)
    # 2 FLOPs per multiply-accumulate for every projection and the lm_head.
    flops = 2 * (linear + arch.vocab * arch.hidden)
    # q.k^T and attention-weighted V: 2 matmuls x 2 FLOPs x heads x head_dim per context token.
    attn = arch.layers * 2 * 2 * arch.q_dim
    return ModelFacts(
        params=arch.total_params,
        params_non_embedding=arch.total_params - arch.embedding_params,
        weight_bytes=int(weight_bytes),
        unread_weight_bytes=unread,
        rope_cache_bytes=int(rope),
        kv_bytes_per_token=int(kv),
        flops_per_token=int(flops),
        attn_flops_per_token_per_ctx=int(attn),
    )
