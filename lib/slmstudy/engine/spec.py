"""What one engine process is asked to do: a JSON-serialisable description.

One ``ConfigSpec`` is one engine configuration (model, precision, weights,
engine arguments) and the workload points measured on it. The runner writes it
to ``spec.json``; the worker process reads it. Its digest decides whether a
finished configuration can be skipped when a notebook is re-run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Point:
    """One workload point: ``batch`` requests submitted at once, measured ``repetitions`` times."""

    name: str
    batch: int
    input_len: int
    output_len: int
    repetitions: int
    warmup: int
    temperature: float = 0.0


@dataclass(frozen=True)
class OverheadCheck:
    """Alternate runs with and without the telemetry sampler to measure its cost."""

    batch_sizes: tuple[int, ...]
    input_len: int
    output_len: int
    pairs: int


@dataclass(frozen=True)
class Agreement:
    """Greedy generations of fixed text prompts, kept to compare precisions' outputs."""

    prompts: tuple[str, ...]
    max_tokens: int


@dataclass(frozen=True)
class ConfigSpec:
    key: str
    model: str
    precision: str
    weights: str
    weights_path: str | None
    engine: dict[str, Any]
    points: tuple[Point, ...]
    telemetry: dict[str, Any]
    seed: int = 0
    timeout_s: float = 1800.0
    overhead_check: OverheadCheck | None = None
    agreement: Agreement | None = None
    # free-form labels copied into every result row (e.g. which experiment step)
    labels: dict[str, Any] = field(default_factory=dict)
    # extra environment of the engine process (e.g. its own compile cache);
    # "{configs_dir}" in a value is replaced by the run folder's configs/ path
    env: dict[str, str] = field(default_factory=dict)
    # folders (same placeholder) emptied before the engine starts: a cold start
    # must be cold also when it is retried
    clean_dirs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ConfigSpec":
        d = dict(d)
        d["points"] = tuple(Point(**p) for p in d["points"])
        d["clean_dirs"] = tuple(d.get("clean_dirs", ()))
        if d.get("agreement"):
            d["agreement"] = Agreement(tuple(d["agreement"]["prompts"]), d["agreement"]["max_tokens"])
        if d.get("overhead_check"):
            oc = dict(d["overhead_check"])
            oc["batch_sizes"] = tuple(oc["batch_sizes"])
            d["overhead_check"] = OverheadCheck(**oc)
        return cls(**d)

    def digest(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def save(self, path: Path) -> None:
        from ..atomic import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "ConfigSpec":
        return cls.from_dict(json.loads(Path(path).read_text()))
