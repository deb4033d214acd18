"""The models and precisions the study knows, read from the YAML files beside this module."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import CatalogError

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelSpec:
    key: str
    display: str
    hf_id: str | None
    family: str
    tiny: bool
    stands_in_for: str | None
    checkpoints: dict[str, str] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return _HERE / "model_configs" / self.key

    def hf_config(self) -> dict[str, Any]:
        """The shipped architecture config (``config.json``)."""
        return json.loads((self.config_dir / "config.json").read_text())


@dataclass(frozen=True)
class EngineSupport:
    """Whether a precision runs on an engine kind ("cuda" or "cpu")."""

    min_capability: float | None = None
    unsupported: str | None = None


@dataclass(frozen=True)
class PrecisionSpec:
    key: str
    display: str
    dtype: str
    weight_bits: int
    quantization: str | None
    quantization_config: dict[str, Any] | None
    attention_backend: str | None
    engines: dict[str, EngineSupport]

    @property
    def weight_bytes(self) -> float:
        return self.weight_bits / 8


def _read_yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load((_HERE / name).read_text())
    if not isinstance(data, dict):
        raise CatalogError(f"{_HERE / name}: expected a mapping at the top level")
    return data


@functools.cache
def models() -> dict[str, ModelSpec]:
    out = {}
    for key, entry in _read_yaml("models.yaml").items():
        spec = ModelSpec(key=key, **{**entry, "checkpoints": dict(entry.get("checkpoints") or {})})
        if not (spec.config_dir / "config.json").is_file():
            raise CatalogError(f"model {key!r} has no config.json under {spec.config_dir}")
        out[key] = spec
    return out


@functools.cache
def precisions() -> dict[str, PrecisionSpec]:
    out = {}
    for key, entry in _read_yaml("precisions.yaml").items():
        engines = {
            kind: EngineSupport(
                min_capability=(support or {}).get("min_capability"),
                unsupported=(support or {}).get("unsupported"),
            )
            for kind, support in entry.get("engines", {}).items()
        }
        out[key] = PrecisionSpec(
            key=key,
            display=entry["display"],
            dtype=entry["dtype"],
            weight_bits=int(entry["weight_bits"]),
            quantization=entry.get("quantization"),
            quantization_config=entry.get("quantization_config"),
            attention_backend=entry.get("attention_backend"),
            engines=engines,
        )
    return out


def model(key: str) -> ModelSpec:
    try:
        return models()[key]
    except KeyError:
        raise CatalogError(f"unknown model {key!r}; known: {', '.join(models())}") from None


def precision(key: str) -> PrecisionSpec:
    try:
        return precisions()[key]
    except KeyError:
        raise CatalogError(f"unknown precision {key!r}; known: {', '.join(precisions())}") from None
