"""Typed, strict study parameters, and the loader that reports every problem at once.

A notebook's parameters come from three layers, later ones winning:

1. ``params/<notebook>/<profile>.yaml`` (the profile: ``cpu`` or ``gpu``; ``auto``
   picks ``gpu`` when an NVIDIA GPU is visible),
2. an optional user file (``-f my.yaml`` on the CLI, ``params_file`` in the notebook),
3. optional overrides (a dict).

The merged mapping is validated by the notebook's schema (unknown keys rejected,
no type coercion). Each problem is reported with the file that set the key, the
key's dotted path and what is allowed, before any engine starts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from . import catalog, paths
from .errors import ParamsError
from .platform import detect


# --------------------------------------------------------------------------- types
def _known_model(value: str) -> str:
    if value not in catalog.models():
        raise ValueError(f"unknown model {value!r}; allowed: {', '.join(catalog.models())}")
    return value


def _known_precision(value: str) -> str:
    if value not in catalog.precisions():
        raise ValueError(f"unknown precision {value!r}; allowed: {', '.join(catalog.precisions())}")
    return value


ModelKey = Annotated[str, AfterValidator(_known_model)]
PrecisionKey = Annotated[str, AfterValidator(_known_precision)]
Profile = Literal["auto", "cpu", "gpu"]


class Strict(BaseModel):
    """Rejects unknown keys and never coerces types ("5" is not 5)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class EngineOptions(Strict):
    """vLLM engine arguments the study controls. Anything else goes in ``extra_args``."""

    max_model_len: PositiveInt = 4096
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_num_seqs: PositiveInt | None = None
    max_num_batched_tokens: PositiveInt | None = None
    enforce_eager: bool = False
    # Off by default: random token-ID prompts never share prefixes, and caching
    # would make repeated prompts (warm-ups) measure a different engine path.
    enable_prefix_caching: bool = False
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    attention_backend: str | None = None
    # Passed to vLLM's AsyncEngineArgs unchanged; names are checked against it
    # before the engine starts.
    extra_args: dict[str, Any] = Field(default_factory=dict)
    start_timeout_s: PositiveFloat = 900.0


class TelemetryOptions(Strict):
    enabled: bool = True
    # 10 Hz at the least: phases (one decode step is ~2-3 ms, a batch ~1 s) need it.
    interval_ms: int = Field(50, ge=5, le=100)
    gpu_index: NonNegativeInt = 0


class Workload(Strict):
    """Token-ID prompts of a fixed length, a fixed output length (``ignore_eos``)."""

    input_len: PositiveInt
    output_len: PositiveInt
    batch_sizes: list[PositiveInt] = Field(min_length=1)
    repetitions: PositiveInt = 5
    warmup: NonNegativeInt = 1
    temperature: float = Field(0.0, ge=0)


class StudyParams(Strict):
    """Keys every notebook shares."""

    models: list[ModelKey] = Field(min_length=1)
    weights: Literal["dummy", "pretrained"] = "dummy"
    # model key -> local folder with pretrained weights (instead of the hub id)
    weights_paths: dict[str, str] = Field(default_factory=dict)
    engine: EngineOptions = Field(default_factory=EngineOptions)
    telemetry: TelemetryOptions = Field(default_factory=TelemetryOptions)
    seed: int = 0
    config_timeout_s: PositiveFloat = 1800.0

    # Subclasses name their precision and workload keys, so that cross checks
    # can point at the exact key: (dotted key, value).
    def precision_fields(self) -> list[tuple[str, str]]:
        return []

    def workload_fields(self) -> list[tuple[str, Workload]]:
        return []

    def check(self) -> list[tuple[str, str]]:
        """Constraints of a notebook's own keys: (dotted key, message) pairs."""
        return []


# ----------------------------------------------------------------- cross checks
def cross_check(p: StudyParams) -> list[tuple[str, str]]:
    """Constraints between keys. Returns (key, message) pairs."""
    problems: list[tuple[str, str]] = []
    for model in p.weights_paths:
        if model not in p.models:
            problems.append((f"weights_paths.{model}", f"names a model not in 'models' ({', '.join(p.models)})"))
    for i, key in enumerate(p.models):
        spec = catalog.model(key)
        if p.weights == "pretrained" and spec.tiny:
            problems.append((f"models[{i}]", f"{key!r} is a randomly initialised CPU stand-in: use weights: dummy"))
        elif p.weights == "pretrained" and not spec.hf_id and key not in p.weights_paths:
            problems.append(("weights_paths", f"pretrained weights for {key!r} need a local folder here"))
    plat = detect()
    for key, prec in p.precision_fields():
        support = catalog.precision(prec).engines.get(plat.engine_kind)
        if support is None or support.unsupported:
            why = support.unsupported if support else "no entry in the precision catalog"
            problems.append((key, f"{prec!r} cannot run on this machine's {plat.engine_kind} engine: {why}"))
        elif (
            plat.engine_kind == "cuda"
            and support.min_capability
            and (plat.compute_capability or 0) < support.min_capability
        ):
            problems.append(
                (key, f"{prec!r} needs compute capability >= {support.min_capability}; "
                      f"{plat.gpu_name} has {plat.compute_capability}")
            )
    for wkey, w in p.workload_fields():
        need = w.input_len + w.output_len
        if need > p.engine.max_model_len:
            problems.append(
                ("engine.max_model_len",
                 f"{p.engine.max_model_len} is shorter than {wkey}.input_len + output_len = {need}")
            )
        if p.engine.max_num_seqs is not None and max(w.batch_sizes) > p.engine.max_num_seqs:
            problems.append(
                ("engine.max_num_seqs",
                 f"{p.engine.max_num_seqs} is below the largest batch size {max(w.batch_sizes)}")
            )
    return problems + p.check()


# ----------------------------------------------------------------------- loading
@dataclass
class Layer:
    """One source of parameters and the dotted keys it set."""

    name: str
    data: dict[str, Any]
    keys: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.keys = set(_flatten_keys(self.data))


def _flatten_keys(d: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.append(key)
        if isinstance(v, dict):
            out.extend(_flatten_keys(v, key + "."))
    return out


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v  # lists and scalars replace
    return out


def _dotted(loc: tuple[Any, ...]) -> str:
    s = ""
    for part in loc:
        if isinstance(part, int):
            s += f"[{part}]"
        else:
            s += ("." if s else "") + str(part)
    return s


def _source_of(key: str, layers: list[Layer]) -> str:
    """The last layer that set ``key`` or one of its parents."""
    plain = key.split("[")[0]
    parts = plain.split(".")
    for layer in reversed(layers):
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in layer.keys:
                return layer.name
    return layers[-1].name if layers else "parameters"


def _allowed_keys(schema: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the sub-model that holds ``loc`` (for unknown-key messages)."""
    model: Any = schema
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fld = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if fld is None:
            return []
        ann = fld.annotation
        model = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), ann)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError([f"{_show(path)}: not valid YAML: {exc}"]) from None
    except OSError as exc:
        raise ParamsError([f"{_show(path)}: cannot read: {exc.strerror}"]) from None
    if not isinstance(data, dict):
        raise ParamsError([f"{_show(path)}: expected a mapping of keys at the top level, got {type(data).__name__}"])
    return data


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(paths.project_root()))
    except ValueError:
        return str(path)


def resolve_profile(profile: str) -> str:
    if profile == "auto":
        return detect().default_profile
    if profile not in ("cpu", "gpu"):
        raise ParamsError([f"profile: {profile!r} is not a profile; allowed: auto, cpu, gpu"])
    return profile


@dataclass(frozen=True)
class Resolved:
    """Validated parameters plus where they came from."""

    notebook: str
    profile: str
    params: StudyParams
    sources: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")

    def digest(self) -> str:
        """Stable across runs: same parameters, same run folder."""
        blob = json.dumps({"notebook": self.notebook, "params": self.as_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def load(
    notebook: str,
    schema: type[StudyParams],
    profile: str = "auto",
    params_file: str | Path | list[str | Path] | tuple[str | Path, ...] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Resolved:
    """Merge and validate a notebook's parameters; raise ParamsError listing every problem."""
    resolved_profile = resolve_profile(profile)
    base = paths.params_dir() / notebook / f"{resolved_profile}.yaml"
    if not base.is_file():
        have = sorted(p.stem for p in (paths.params_dir() / notebook).glob("*.yaml"))
        raise ParamsError([f"{_show(base)}: no such profile file for {notebook!r}; profiles here: {', '.join(have) or 'none'}"])
    layers = [Layer(_show(base), _read_yaml(base))]
    files = [params_file] if isinstance(params_file, (str, Path)) else list(params_file or [])
    for f in files:
        path = Path(f)
        if not path.is_absolute() and not path.exists():
            path = paths.project_root() / path  # notebooks run from notebooks/: accept root-relative
        layers.append(Layer(_show(path), _read_yaml(path)))
    if overrides:
        if not isinstance(overrides, dict):
            raise ParamsError([f"overrides: expected a mapping of keys, got {type(overrides).__name__}"])
        layers.append(Layer("overrides", dict(overrides)))

    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _deep_merge(merged, layer.data)

    problems: list[str] = []
    try:
        params = schema.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            key = _dotted(err["loc"])
            src = _source_of(key, layers)
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(_allowed_keys(schema, err["loc"]))
                problems.append(f"{src}: unknown key {key!r}; allowed here: {allowed}")
            elif err["type"] == "missing":
                problems.append(f"{src}: missing required key {key!r}")
            else:
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(f"{src}: key {key!r}: {msg} (got {err.get('input')!r})")
        raise ParamsError(problems) from None
    for key, msg in cross_check(params):
        problems.append(f"{_source_of(key, layers)}: key {key!r}: {msg}")
    if problems:
        raise ParamsError(problems)
    return Resolved(notebook, resolved_profile, params, tuple(layer.name for layer in layers))
