"""Build (once) and describe the GGUF file of a catalog model in one file type.

``build(model_key, file_type)`` writes ``<cache>/gguf/<model>__<type>__<digest>/model.gguf``:
the model's real architecture and tensor layout, the per-tensor ggml types
llama.cpp's quantizer would choose, random weights, the metadata llama.cpp needs
to load and generate, and a vocabulary of the right size. Every tensor has the
byte size llama-quantize would give it, so ``os.stat`` of the file is a fair
measurement of "the GGUF Q4_K_M build of X is N GB", up to the metadata (our
vocabulary and merges are about the size of the real ones; no chat template).

The folder is built atomically (``atomic.build_folder``) under a lock: a killed
build leaves at most a dot-prefixed temporary folder, never a half file under the
final name. The digest covers the config, file type, seed and generator version,
so a change to any of them builds a new file instead of trusting an old one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_VERSION, GGUF_DEFAULT_ALIGNMENT, GGMLQuantizationType, GGUFWriter

from .. import catalog, paths
from ..analytic import Architecture
from ..atomic import UMASK, build_folder, exclusive
from .blocks import WEIGHT_STD, random_weight
from .layout import TensorPlan, plan
from .rope import llama3_rope_factors
from .types import FileType
from .types import file_type as lookup_file_type
from .vocab import build_vocab

# Bump when the bytes a build writes change (layout, metadata, generator): old
# cached files then stop matching instead of being reused.
GENERATOR_VERSION = 1
FILE_NAME = "model.gguf"


@dataclass(frozen=True)
class GgufFile:
    path: Path
    model: str  # catalog key
    file_type: str  # FILE_TYPES name
    size_bytes: int  # os.stat of the file: what a reader would download
    n_params: int  # learned parameters (rope factors excluded), as analytic counts them
    tensor_types: dict[str, int]  # ggml type name -> number of tensors of that type
    bits_per_weight: float  # size_bytes * 8 / n_params, metadata included
    tensor_bytes: int  # the tensor data alone (the file less its header and metadata)
    bytes_read_per_token: int  # what generating one token reads: see read_per_token


def build(model_key: str, file_type: str, seed: int = 0) -> GgufFile:
    """The GGUF file of ``model_key`` in ``file_type``, written on first use."""
    ft = lookup_file_type(file_type)
    spec = catalog.model(model_key)
    cfg = spec.hf_config()
    tensors = plan(cfg, ft)
    folder = paths.cache_dir() / "gguf" / f"{model_key}__{ft.name}__{_digest(cfg, ft, seed)}"
    if not (folder / FILE_NAME).is_file():
        with exclusive(folder.parent / f".{folder.name}.lock", on_busy=lambda owner: None):
            build_folder(folder, FILE_NAME, lambda tmp: _write_folder(tmp, spec, cfg, ft, tensors, seed))
    path = folder / FILE_NAME
    size = os.stat(path).st_size
    n_params = Architecture.from_config(cfg).total_params
    counts = Counter(t.ggml_type.name for t in tensors)
    return GgufFile(path=path, model=model_key, file_type=ft.name, size_bytes=size, n_params=n_params,
                    tensor_types=dict(sorted(counts.items())), bits_per_weight=size * 8 / n_params,
                    tensor_bytes=sum(t.nbytes for t in tensors), bytes_read_per_token=read_per_token(tensors))


def read_per_token(tensors: list[TensorPlan]) -> int:
    """Bytes of weights one decoding step reads: every tensor once, except the token
    embedding, of which only the new token's row is read, unless it is also the
    output matrix (tied embeddings: no ``output.weight``), which reads it whole."""
    total = sum(t.nbytes for t in tensors)
    embd = next(t for t in tensors if t.name == "token_embd.weight")
    if any(t.name == "output.weight" for t in tensors):
        total -= embd.nbytes - embd.nbytes // embd.n_rows
    return total


def _digest(cfg: dict[str, Any], ft: FileType, seed: int) -> str:
    blob = json.dumps({"config": cfg, "file_type": ft.name, "seed": seed, "generator": GENERATOR_VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _write_folder(tmp: Path, spec: catalog.ModelSpec, cfg: dict[str, Any], ft: FileType,
                  tensors: list[TensorPlan], seed: int) -> None:
    try:
        write_gguf(tmp / FILE_NAME, spec, cfg, ft, tensors, seed)
        tmp.chmod(0o777 & ~UMASK)  # mkdtemp made it private; the cache is shared
    except BaseException:
        # build_folder removes its temporary folder only on OSError; a multi-GB
        # partial file must not outlive any failure (Ctrl-C included).
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_gguf(path: Path, spec: catalog.ModelSpec, cfg: dict[str, Any], ft: FileType,
               tensors: list[TensorPlan], seed: int) -> None:
    arch = Architecture.from_config(cfg)
    w = GGUFWriter(path, arch.model_type)
    _add_metadata(w, spec, cfg, arch, ft)
    build_vocab(cfg).add_to(w)
    for t in tensors:
        if t.ggml_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            dtype = np.float32 if t.ggml_type is GGMLQuantizationType.F32 else np.float16
            w.add_tensor_info(t.name, t.numpy_shape, np.dtype(dtype), t.nbytes)
        else:  # raw quantized rows: numpy shape (rows, bytes per row)
            byte_shape = (*t.numpy_shape[:-1], t.nbytes // t.n_rows)
            w.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8), t.nbytes, raw_dtype=t.ggml_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    data_start = GGUFWriter.ggml_pad(w.fout[0].tell(), GGUF_DEFAULT_ALIGNMENT)
    rng = np.random.default_rng(seed)
    for t in tensors:
        w.write_tensor_data(_values(t, cfg, rng))
    w.close()
    expected = data_start + sum(GGUFWriter.ggml_pad(t.nbytes, GGUF_DEFAULT_ALIGNMENT) for t in tensors)
    if os.stat(path).st_size != expected:
        raise OSError(f"{path}: wrote {os.stat(path).st_size} bytes, expected {expected}")


def _values(t: TensorPlan, cfg: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    if t.role == "rope_freqs":
        return llama3_rope_factors(cfg)
    if t.role == "norm":  # RMSNorm gains start at 1 in a fresh model
        return 1.0 + rng.standard_normal(t.n_elements, dtype=np.float32) * np.float32(WEIGHT_STD)
    return random_weight(t.ggml_type, t.ne, rng)


def _add_metadata(w: GGUFWriter, spec: catalog.ModelSpec, cfg: dict[str, Any], arch: Architecture,
                  ft: FileType) -> None:
    """The keys convert_hf_to_gguf.py writes for Qwen2/Llama, and the loader reads."""
    w.add_type("model")
    w.add_name(f"{spec.display} (random weights)")
    w.add_description(
        "Random weights in the real architecture, tensor types and sizes, generated by slmstudy.gguf_files "
        "to measure file size and llama.cpp speed. Not a trained model: its output is meaningless."
    )
    w.add_context_length(arch.max_position)
    w.add_embedding_length(arch.hidden)
    w.add_block_count(arch.layers)
    w.add_feed_forward_length(arch.intermediate)
    w.add_head_count(arch.heads)
    w.add_head_count_kv(arch.kv_heads)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    if "head_dim" in cfg:
        w.add_key_length(arch.head_dim)
        w.add_value_length(arch.head_dim)
    if arch.model_type == "llama":  # LlamaModel.set_gguf_parameters adds these two
        w.add_vocab_size(arch.vocab)
        w.add_rope_dimension_count(arch.head_dim)
    w.add_file_type(int(ft.ftype))
    w.add_quantization_version(GGML_QUANT_VERSION)
