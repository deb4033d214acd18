"""The GGUF file types and llama.cpp's per-tensor type rule, for the builder.

Defined in ``catalog.gguf_types`` (the analytic model counts vLLM's GGUF weight
bytes by the same rule and may not import this package); re-exported here.
"""

from __future__ import annotations

from ..catalog.gguf_types import (
    FILE_TYPES,
    Category,
    FileType,
    UnknownFileType,
    block_size,
    file_type,
    row_bytes,
    tensor_type,
    type_size,
    use_more_bits,
)

__all__ = ["FILE_TYPES", "Category", "FileType", "UnknownFileType", "block_size", "file_type", "row_bytes",
           "tensor_type", "type_size", "use_more_bits"]
