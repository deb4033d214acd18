"""The tensors of a Qwen2 or Llama GGUF file: names, ggml shapes, categories, types.

Names and shapes are those llama.cpp's loader asks for (``src/llama-model.cpp``,
LLM_ARCH_QWEN2 and LLM_ARCH_LLAMA; names from ``LLM_TENSOR_NAMES`` in
``src/llama-arch.cpp``), written by ``convert_hf_to_gguf.py``:

* ``token_embd.weight`` [n_embd, n_vocab]; ``output.weight`` the same, only when
  the embeddings are untied (the loader falls back to token_embd without it);
  ``output_norm.weight`` [n_embd];
* ``rope_freqs.weight`` [head_dim/2], F32, only for Llama 3 rope scaling: the
  per-frequency factors convert_hf_to_gguf computes from ``rope_scaling``;
* per block ``blk.N.``: ``attn_norm``/``ffn_norm`` [n_embd]; ``attn_q`` [n_embd, q_dim],
  ``attn_k``/``attn_v`` [n_embd, kv_dim], ``attn_output`` [q_dim, n_embd];
  ``attn_{q,k,v}.bias`` when the model has qkv biases (Qwen2 always);
  ``ffn_gate``/``ffn_up`` [n_embd, n_ff], ``ffn_down`` [n_ff, n_embd].

ggml shapes list the row length first (``ne[0]``), the reverse of numpy's order.
Tensors are ordered as llama-quantize writes them (its ``weights_map`` order: the
non-block tensors by name, then block by block, names sorted within a block).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gguf import GGMLQuantizationType

from ..analytic import Architecture
from .types import Category, FileType, row_bytes, tensor_type


@dataclass(frozen=True)
class TensorPlan:
    name: str
    ne: tuple[int, ...]  # ggml order: ne[0] is the row length
    category: Category
    layer: int | None
    ggml_type: GGMLQuantizationType
    role: str  # what the values are: "weight", "norm", "bias" or "rope_freqs"

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.ne:
            n *= d
        return n

    @property
    def n_rows(self) -> int:
        return self.n_elements // self.ne[0]

    @property
    def nbytes(self) -> int:
        return self.n_rows * row_bytes(self.ggml_type, self.ne[0])

    @property
    def numpy_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.ne))


def has_llama3_rope_freqs(cfg: dict[str, Any]) -> bool:
    scaling = cfg.get("rope_scaling") or {}
    return str(scaling.get("rope_type", scaling.get("type", ""))).lower() == "llama3"


def plan(cfg: dict[str, Any], ft: FileType) -> list[TensorPlan]:
    """Every tensor of the file, in file order, with its ggml type for ``ft``."""
    arch = Architecture.from_config(cfg)
    h, v, q, kv, ff = arch.hidden, arch.vocab, arch.q_dim, arch.kv_dim, arch.intermediate

    def make(name: str, ne: tuple[int, ...], category: Category, layer: int | None, role: str) -> TensorPlan:
        t = tensor_type(ft, category, ne, layer, arch.layers, arch.tied_embeddings)
        return TensorPlan(name, ne, category, layer, t, role)

    top = [
        make("token_embd.weight", (h, v), Category.TOKEN_EMBD, None, "weight"),
        make("output_norm.weight", (h,), Category.OTHER, None, "norm"),
    ]
    if not arch.tied_embeddings:
        top.append(make("output.weight", (h, v), Category.OUTPUT, None, "weight"))
    if has_llama3_rope_freqs(cfg):
        top.append(make("rope_freqs.weight", (arch.head_dim // 2,), Category.OTHER, None, "rope_freqs"))
    out = sorted(top, key=lambda t: t.name)

    for i in range(arch.layers):
        block = [
            make(f"blk.{i}.attn_norm.weight", (h,), Category.OTHER, i, "norm"),
            make(f"blk.{i}.attn_q.weight", (h, q), Category.ATTENTION_Q, i, "weight"),
            make(f"blk.{i}.attn_k.weight", (h, kv), Category.ATTENTION_K, i, "weight"),
            make(f"blk.{i}.attn_v.weight", (h, kv), Category.ATTENTION_V, i, "weight"),
            make(f"blk.{i}.attn_output.weight", (q, h), Category.ATTENTION_OUTPUT, i, "weight"),
            make(f"blk.{i}.ffn_norm.weight", (h,), Category.OTHER, i, "norm"),
            make(f"blk.{i}.ffn_gate.weight", (h, ff), Category.FFN_GATE, i, "weight"),
            make(f"blk.{i}.ffn_up.weight", (h, ff), Category.FFN_UP, i, "weight"),
            make(f"blk.{i}.ffn_down.weight", (ff, h), Category.FFN_DOWN, i, "weight"),
        ]
        if arch.qkv_bias:
            block += [
                make(f"blk.{i}.attn_q.bias", (q,), Category.OTHER, i, "bias"),
                make(f"blk.{i}.attn_k.bias", (kv,), Category.OTHER, i, "bias"),
                make(f"blk.{i}.attn_v.bias", (kv,), Category.OTHER, i, "bias"),
            ]
        out += sorted(block, key=lambda t: t.name)

    learned = sum(t.n_elements for t in out if t.role != "rope_freqs")
    if learned != arch.total_params:  # the two descriptions of the model must agree
        raise AssertionError(f"GGUF layout has {learned} parameters, analytic model {arch.total_params}")
    return out
