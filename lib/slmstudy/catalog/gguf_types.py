"""The GGUF file types the study knows, and which ggml type each tensor gets in them.

Catalog data, like the precisions: ``gguf_files`` writes files by this rule and
the analytic model (``analytic.gguf_weight_bytes``) counts the bytes vLLM loads
from them, so it lives here, below both (the analytic model may not import
``gguf_files``, whose layout builds on it). ``gguf`` is imported here: import this
module only where a GGUF file type is wanted (gguf-py takes over a second to import).

A GGUF "file type" (Q4_K_M, Q8_0, ...) is not one tensor type: llama.cpp's
quantizer picks a ggml type per tensor (more bits for the output matrix and for
some ``attn_v``/``ffn_down`` layers, a fallback type when a row length is not a
multiple of the block size). The rule below is copied from llama.cpp
``src/llama-quant.cpp`` (ggml-org/llama.cpp, read at commit 007dbbf3):
``llama_tensor_get_type`` (entry: which tensors may be quantized),
``llama_tensor_get_type_impl`` (per-category choices), ``tensor_type_fallback``
(row length not divisible by the block size) and ``llama_ftype_get_default_type``,
restricted to what they do for dense, single-expert, non-Falcon models without an
importance matrix or user overrides: the Qwen2 and Llama files of this study.

The F16 file is what ``convert_hf_to_gguf.py --outtype f16`` writes (and what
``llama-quantize ... F16`` keeps): every 2-D weight in F16, 1-D tensors (norms,
biases, rope factors) in F32, as in the source file the quantizer starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from ..errors import SlmstudyError

T = GGMLQuantizationType


class UnknownFileType(SlmstudyError, ValueError):
    """A GGUF file type name the study does not know."""


@dataclass(frozen=True)
class FileType:
    name: str  # as llama-quantize and file names spell it: "Q4_K_M"
    ftype: LlamaFileType  # the general.file_type value (llama_ftype in llama.h)
    default: GGMLQuantizationType  # llama_ftype_get_default_type

    @property
    def quantized(self) -> bool:
        """False for F16: llama_tensor_get_type applies its mixture rules only when
        the default type is a quantized one (``ggml_is_quantized(default_type)``)."""
        return block_size(self.default) > 1


# Data, not code: adding a file type is one line here, if its rules below exist.
_FILE_TYPES: tuple[FileType, ...] = (
    FileType("F16", LlamaFileType.MOSTLY_F16, T.F16),
    FileType("Q8_0", LlamaFileType.MOSTLY_Q8_0, T.Q8_0),
    FileType("Q6_K", LlamaFileType.MOSTLY_Q6_K, T.Q6_K),
    FileType("Q5_K_M", LlamaFileType.MOSTLY_Q5_K_M, T.Q5_K),
    FileType("Q5_K_S", LlamaFileType.MOSTLY_Q5_K_S, T.Q5_K),
    FileType("Q4_K_M", LlamaFileType.MOSTLY_Q4_K_M, T.Q4_K),
    FileType("Q4_K_S", LlamaFileType.MOSTLY_Q4_K_S, T.Q4_K),
    FileType("Q4_0", LlamaFileType.MOSTLY_Q4_0, T.Q4_0),
)
FILE_TYPES: dict[str, FileType] = {ft.name: ft for ft in _FILE_TYPES}


def file_type(name: str) -> FileType:
    try:
        return FILE_TYPES[name]
    except KeyError:
        raise UnknownFileType(
            f"unknown GGUF file type {name!r}; known: {', '.join(FILE_TYPES)}"
        ) from None


# --- ggml type sizes (from gguf-py, which mirrors ggml's type traits) ---------

def block_size(t: GGMLQuantizationType) -> int:
    """Weights per block (1 for F16/F32)."""
    return GGML_QUANT_SIZES[t][0]


def type_size(t: GGMLQuantizationType) -> int:
    """Bytes per block."""
    return GGML_QUANT_SIZES[t][1]


def row_bytes(t: GGMLQuantizationType, n_per_row: int) -> int:
    """ggml_row_size: bytes of one row of ``n_per_row`` weights."""
    if n_per_row % block_size(t):
        raise ValueError(f"a row of {n_per_row} is not a whole number of {t.name} blocks")
    return n_per_row // block_size(t) * type_size(t)


# --- per-tensor rule ----------------------------------------------------------

class Category(Enum):
    """tensor_category of llama-quant.cpp, for the tensors these models have."""

    TOKEN_EMBD = "token_embd"
    OUTPUT = "output"
    ATTENTION_Q = "attn_q"
    ATTENTION_K = "attn_k"
    ATTENTION_V = "attn_v"
    ATTENTION_OUTPUT = "attn_output"
    FFN_GATE = "ffn_gate"
    FFN_UP = "ffn_up"
    FFN_DOWN = "ffn_down"
    OTHER = "other"  # norms, biases, rope factors: never quantized (1-D)


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama-quant.cpp's ``use_more_bits``: the first and last eighth of the layers
    and every third layer in between (C integer division, as there)."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def tensor_type(
    ft: FileType, category: Category, ne: tuple[int, ...], layer: int | None, n_layers: int, tied_embeddings: bool
) -> GGMLQuantizationType:
    """The ggml type llama.cpp gives a tensor of ggml shape ``ne`` in a file of type ``ft``.

    ``layer`` is the block index, which for these models equals llama-quant.cpp's
    running counters ``i_attention_wv`` and ``i_ffn_down``: it visits tensors in
    ``weights_map`` order (layer number, then name), one attn_v and one ffn_down
    per layer, and ``n_attention_wv`` = ``n_ffn_down`` = the layer count.
    """
    if len(ne) < 2:  # tensor_allows_quantization: only 2-D (and 3-D) tensors
        return T.F32
    if not ft.quantized:
        return ft.default
    new = _mixture_type(ft, category, ne, layer, n_layers, tied_embeddings)
    return _fallback(new, ne[0])


def _mixture_type(
    ft: FileType, category: Category, ne: tuple[int, ...], layer: int | None, n_layers: int, tied: bool
) -> GGMLQuantizationType:
    """llama_tensor_get_type_impl for the file types of ``FILE_TYPES``."""
    name, new = ft.name, ft.default
    # Tied embeddings (no output.weight in the file): token_embd is the output matrix
    # too, and is typed as one ("has_tied_embeddings").
    if category is Category.OUTPUT or (tied and category is Category.TOKEN_EMBD):
        if ne[0] % block_size(new):
            return T.Q8_0
        return new if new is T.Q8_0 else T.Q6_K
    if category is Category.ATTENTION_V:
        assert layer is not None
        if name in ("Q4_K_M", "Q5_K_M") and use_more_bits(layer, n_layers):
            return T.Q6_K
        if name == "Q4_K_S" and layer < 4:
            return T.Q5_K
        return new
    if category is Category.FFN_DOWN:
        assert layer is not None
        if name in ("Q4_K_M", "Q5_K_M") and use_more_bits(layer, n_layers):
            return T.Q6_K
        if name == "Q4_K_S" and layer < n_layers // 8:
            return T.Q5_K
        return new
    # token_embd (untied), attn_q/k/output, ffn_gate/up: no rule for these file
    # types (the others are for IQ*, Q2_K, Q3_K*, MoE and Falcon): the default type.
    return new


# tensor_type_fallback: the type used when a row is not a whole number of blocks.
_FALLBACK: dict[GGMLQuantizationType, GGMLQuantizationType] = {
    T.Q4_K: T.Q5_0,
    T.Q5_K: T.Q5_1,
    T.Q6_K: T.Q8_0,
}


def _fallback(t: GGMLQuantizationType, ncols: int) -> GGMLQuantizationType:
    if ncols % block_size(t) == 0:
        return t
    if t not in _FALLBACK:
        # llama.cpp throws "no tensor type fallback is defined for type ..." here.
        raise ValueError(f"llama.cpp defines no fallback for {t.name} (row of {ncols})")
    out = _FALLBACK[t]
    # "must use F16 due to unusual shape": not even the 32-block fallback fits.
    return out if ncols % block_size(out) == 0 else T.F16
