"""What one llama.cpp process is asked to do, as typed models that travel as JSON.

* ``EdgeSpec``: one configuration: model, GGUF file type, CPU threads, context.
* ``EdgePoint``: one request of ``input_len`` prompt tokens and ``output_len``
  generated tokens (end-of-sequence ignored), ``repetitions`` times after
  ``warmup`` runs. Article 001's speed test is 100 in / 512 out.
* ``EdgeJob``: a configuration and its point, in one process.

Batch is always one: the articles' edge numbers are one user on one device, and
llama.cpp's CPU path is measured as such.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ..engine.spec import Frozen
from ..params import TelemetryOptions


def gguf_label(file_type: str) -> str:
    """What tables carry in their precision column for a GGUF file (``gguf-Q4_K_M``)."""
    return f"gguf-{file_type}"


class EdgeSpec(Frozen):
    model: str  # catalog key (slmstudy.catalog.models)
    file_type: str  # GGUF file type (slmstudy.gguf_files.FILE_TYPES): F16, Q8_0, Q4_K_M
    threads: int = Field(gt=0)  # llama.cpp threads for generation and prompt processing
    n_ctx: int = Field(1024, gt=0)
    telemetry: TelemetryOptions = TelemetryOptions()
    seed: int = 0

    @property
    def precision(self) -> str:
        return gguf_label(self.file_type)

    @property
    def key(self) -> str:
        return f"{self.model}__{self.precision}__t{self.threads}"


class EdgePoint(Frozen):
    input_len: int = Field(gt=0)
    output_len: int = Field(gt=0)
    repetitions: int = Field(gt=0)
    warmup: int = Field(ge=0)

    def satisfies(self, need: "EdgePoint") -> bool:
        return (self.input_len, self.output_len) == (need.input_len, need.output_len) and (
            self.repetitions >= need.repetitions and self.warmup >= need.warmup)


class EdgeJob(Frozen):
    kind: Literal["edge"] = "edge"
    engine: EdgeSpec
    point: EdgePoint
    timeout_s: float = Field(1800.0, gt=0)

    @property
    def key(self) -> str:
        return self.engine.key

    def satisfies(self, need: "EdgeJob") -> bool:
        return self.engine == need.engine and self.point.satisfies(need.point)

    def save(self, path: Path) -> None:
        from ..atomic import write_text

        write_text(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "EdgeJob":
        return cls.model_validate_json(Path(path).read_text())


class GgufFileJob(Frozen):
    """Build one GGUF file (random weights, the file type's real tensor types) and
    measure it: its size on disk is what the articles' "the Q4 build is 0.8 GB"
    claims are about. Built in its own process (a 1.5B model's F16 tensors are
    3.5 GB of memory while written)."""

    kind: Literal["gguf_file"] = "gguf_file"
    model: str
    file_type: str
    seed: int = 0
    timeout_s: float = Field(900.0, gt=0)

    @property
    def precision(self) -> str:
        return gguf_label(self.file_type)

    @property
    def key(self) -> str:
        return f"{self.model}__{self.precision}__file"

    def satisfies(self, need: "GgufFileJob") -> bool:
        return (self.model, self.file_type, self.seed) == (need.model, need.file_type, need.seed)
