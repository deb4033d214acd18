"""GGUF files of the catalog's models with random weights, for llama.cpp.

What vLLM's ``load_format="dummy"`` is to a safetensors folder, this is to GGUF:
the real architecture, tensor shapes, per-tensor quantization types (as
llama.cpp's quantizer picks them for each file type) and loader metadata, with
random values. File sizes are measured on the written file; llama.cpp loads and
runs it as it would the published one.

    build(model_key, file_type, seed=0) -> GgufFile
    FILE_TYPES: the file type names ("F16", "Q8_0", "Q4_K_M", ...)
"""

from __future__ import annotations

from .types import FILE_TYPES as _FILE_TYPES
from .types import UnknownFileType
from .writer import GgufFile, build

FILE_TYPES: list[str] = list(_FILE_TYPES)

__all__ = ["FILE_TYPES", "GgufFile", "UnknownFileType", "build"]
