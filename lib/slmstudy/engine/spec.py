"""What one engine process is asked to do, as typed models that travel as JSON.

* ``EngineSpec``: one engine configuration (model, precision, weights, engine and
  telemetry options, seed). Its digest identifies the engine: two notebooks that
  ask for the same engine get the same digest, and a study measures it once.
* ``Point``: one workload point (``batch`` requests of fixed input and output
  length, measured ``repetitions`` times after ``warmup`` runs). Points of the
  same *shape* (batch, lengths, temperature) are the same measurement whatever a
  notebook calls them; the one with more repetitions satisfies the other.
* ``EngineJob``: an engine and the points measured on it, in one process.

The runner writes a job to ``spec.json``; the worker reads it back into the same
types (``EngineJob.load``), so nothing is read by string key with a default of
its own on the other side.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..params import EngineOptions, TelemetryOptions


class Frozen(BaseModel):
    """Immutable, no unknown keys; built by code (so no strict type checks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def digest(self, length: int = 16) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:length]


class Point(Frozen):
    """``batch`` requests submitted at once, measured ``repetitions`` times."""

    name: str
    batch: int = Field(gt=0)
    input_len: int = Field(gt=0)
    output_len: int = Field(gt=0)
    repetitions: int = Field(gt=0)
    warmup: int = Field(ge=0)
    temperature: float = 0.0
    # Measured first on a fresh engine (the cross-check's side: vLLM's own tool
    # measures a fresh engine too).
    first: bool = False

    @property
    def shape(self) -> tuple[int, int, int, float]:
        return (self.batch, self.input_len, self.output_len, self.temperature)

    def shape_digest(self) -> str:
        blob = json.dumps(self.shape)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def satisfies(self, need: "Point") -> bool:
        """Measured at least as thoroughly as ``need`` asks, on the same shape."""
        return (self.shape == need.shape and self.repetitions >= need.repetitions
                and self.warmup >= need.warmup and (self.first or not need.first))


class OverheadCheck(Frozen):
    """Alternate runs with and without the telemetry sampler to measure its cost."""

    batch_sizes: tuple[int, ...]
    input_len: int
    output_len: int
    pairs: int


class HarnessCheck(Frozen):
    """Alternate runs whose tokens are streamed and timed one by one with runs of
    the same batch that only collect final outputs (as ``vllm bench latency``
    does), to measure what our per-token timing costs."""

    batch_sizes: tuple[int, ...]
    input_len: int
    output_len: int
    pairs: int


class FrontendCheck(Frozen):
    """Inside one process, two engines of the same arguments, each with its own
    engine core: vLLM's ``AsyncLLM``, which our harness drives, and ``LLM``, whose
    ``generate`` ``vllm bench latency`` times. Runs of the same batch rotate
    through three modes (``stream``: our measured path, every token streamed and
    timed; ``final``: ``AsyncLLM`` with final outputs only; ``llm``: one
    ``LLM.generate`` call): both front ends share the host of the moment (no
    process-to-process difference), and a slow drift falls on every mode alike.
    What it cannot remove is the host's pace moving between runs seconds apart,
    which the CI over the pairs carries (on the lent H100 as wide as the spread
    between fresh processes: ``outputs/reference/h100/03_batch_scaling_frontends``)."""

    MODES: ClassVar[tuple[str, ...]] = ("stream", "final", "llm")

    batch_sizes: tuple[int, ...]
    input_len: int
    output_len: int
    pairs: int
    temperature: float = 0.0


class AnatomyCheck(Frozen):
    """Profile ``steps`` decode steps from the middle of a batch of each of
    ``batch_sizes`` requests (the sweep's lengths and temperature), apart from the
    measured runs: every kernel and where each step starts (``anatomy``)."""

    batch_sizes: tuple[int, ...]
    input_len: int = Field(gt=0)
    output_len: int = Field(gt=0)
    steps: int = Field(gt=1)
    temperature: float = 0.0

    @property
    def skip(self) -> int:
        """Decode steps of the whole batch before the window: the window sits in the
        middle of the output, at the sweep's mean context."""
        return max((self.output_len - self.steps) // 2 - 1, 0)


class Agreement(Frozen):
    """Greedy generations of fixed text prompts, kept to compare precisions' outputs."""

    prompts: tuple[str, ...]
    max_tokens: int


class EngineSpec(Frozen):
    model: str
    precision: str
    weights: Literal["dummy", "pretrained"] = "dummy"
    weights_path: str | None = None
    engine: EngineOptions
    telemetry: TelemetryOptions = TelemetryOptions()
    seed: int = 0

    @property
    def key(self) -> str:
        return f"{self.model}__{self.precision}__{self.weights}"


class EngineJob(Frozen):
    kind: Literal["engine"] = "engine"
    engine: EngineSpec
    points: tuple[Point, ...] = ()
    # "cold": the model's compile caches are emptied first, so the start pays
    # every compilation (what a fresh machine pays); "any": whatever they hold.
    start: Literal["any", "cold"] = "any"
    # Fresh engines of the same arguments started again (cross-check rounds).
    round: int = Field(1, ge=1)
    overhead_check: OverheadCheck | None = None
    harness_check: HarnessCheck | None = None
    frontend_check: FrontendCheck | None = None
    agreement: Agreement | None = None
    anatomy: AnatomyCheck | None = None
    timeout_s: float = Field(1800.0, gt=0)

    # Optional work on the engine beside its points; two different values of one
    # cannot share an engine process.
    CHECKS: ClassVar[tuple[str, ...]] = ("overhead_check", "harness_check", "frontend_check", "agreement",
                                         "anatomy")

    @property
    def key(self) -> str:
        return self.engine.key + ("__cold" if self.start == "cold" else "") + (
            "__frontends" if self.frontend_check else "") + (f"__round{self.round}" if self.round > 1 else "")

    @property
    def merge_key(self) -> tuple[str, str, int] | tuple[str, str, int, str]:
        """Jobs with the same merge key can be measured by one engine process. A
        front-end check's job stays apart (its process holds a second engine beside
        this one), and no ``vllm bench`` run precedes it."""
        key = (self.engine.digest(), self.start, self.round)
        return (*key, "frontends") if self.frontend_check else key

    def satisfies(self, need: "EngineJob") -> bool:
        """Every point, check and output ``need`` asks for is measured by this job."""
        if self.merge_key != need.merge_key:
            return False
        if any(getattr(need, c) and getattr(self, c) != getattr(need, c) for c in self.CHECKS):
            return False
        return all(any(mine.satisfies(p) for mine in self.points) for p in need.points)

    def point_for(self, need: Point) -> Point | None:
        """This job's point that measures ``need``."""
        return next((mine for mine in self.points if mine.satisfies(need)), None)

    def save(self, path: Path) -> None:
        from ..atomic import write_text

        write_text(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "EngineJob":
        return cls.model_validate_json(Path(path).read_text())


class BenchLatencyJob(Frozen):
    """``vllm bench latency`` with an engine's very arguments and one point's
    workload, run just before that engine (``precedes``) so both see the same
    machine state. ``tool="throughput"``: ``vllm bench throughput`` instead, the
    point's batch as one offline batch of random prompts of its lengths (one timed
    ``generate`` per process: ``iters`` 1, no warm-up)."""

    kind: Literal["bench_latency"] = "bench_latency"
    engine: EngineSpec
    point: Point
    iters: int = Field(gt=0)
    warmup: int = Field(ge=0)
    round: int = Field(1, ge=1)
    timeout_s: float = Field(900.0, gt=0)
    tool: Literal["latency", "throughput"] = "latency"

    @property
    def key(self) -> str:
        name = "bench" if self.tool == "latency" else "bthru"
        return f"{self.engine.key}__{name}_b{self.point.batch}" + (f"__round{self.round}" if self.round > 1 else "")

    @property
    def precedes(self) -> tuple[str, str, int]:
        """The merge key of the engine job this one must run just before."""
        return (self.engine.digest(), "any", self.round)

    def satisfies(self, need: "BenchLatencyJob") -> bool:
        return self == need
