"""Merging the layers of a notebook's parameters and reporting every problem at once.

A notebook's parameters come from three layers, later ones winning:

1. ``params/<notebook>/<profile>.yaml`` (the profile: ``cpu`` or ``gpu``; ``auto``
   picks ``gpu`` when an NVIDIA GPU is visible),
2. optional user files (``-f my.yaml`` on the CLI, ``params_file`` in the notebook),
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
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .. import paths
from ..errors import ParamsError
from ..platform import detect
from .schema import StudyParams, cross_check

EXCERPT = 80  # characters of a bad value quoted back


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


def dotted(loc: tuple[Any, ...]) -> str:
    s = ""
    for part in loc:
        s += f"[{part}]" if isinstance(part, int) else ("." if s else "") + str(part)
    return s


def excerpt(value: Any) -> str:
    """``repr(value)``, cut to a readable length: a 5 MB value is not echoed back."""
    text = repr(value)
    return text if len(text) <= EXCERPT else f"{text[:EXCERPT]}... ({len(text):,} characters)"


def _sets(layer: Layer, key: str) -> bool:
    parts = key.split("[")[0].split(".")
    return any(".".join(parts[:n]) in layer.keys for n in range(len(parts), 0, -1))


def _source_of(keys: tuple[str, ...], layers: list[Layer]) -> str:
    """The last layer that set any of ``keys`` or one of their parents."""
    return next((layer.name for layer in reversed(layers) if any(_sets(layer, k) for k in keys)),
                layers[-1].name if layers else "parameters")


def _blamed(keys: tuple[str, ...], layers: list[Layer]) -> tuple[str, str]:
    """(file, key) for a problem between ``keys``: the last layer that set one of
    them, and the key it set (the user's own key, not the profile's)."""
    for layer in reversed(layers):
        for key in keys:
            if _sets(layer, key):
                return layer.name, key
    return (layers[-1].name if layers else "parameters"), keys[0]


def allowed_keys(schema: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the sub-model that holds ``loc`` (for unknown-key messages)."""
    model: Any = schema
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fld = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if fld is None:
            return []
        ann = fld.annotation
        model = next((a for a in getattr(ann, "__args__", (ann,))
                      if isinstance(a, type) and issubclass(a, BaseModel)), ann)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields)


def validation_problems(exc: ValidationError, schema: type[BaseModel], source: Any) -> list[str]:
    """One line per pydantic error: ``<source>: <what>``; ``source(key)`` names the file."""
    problems = []
    for err in exc.errors():
        key = dotted(err["loc"])
        src = source(key)
        if err["type"] == "extra_forbidden":
            problems.append(f"{src}: unknown key {key!r}; allowed here: {', '.join(allowed_keys(schema, err['loc']))}")
        elif err["type"] == "missing":
            problems.append(f"{src}: missing required key {key!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{src}: key {key!r}: {msg} (got {excerpt(err.get('input'))})")
    return problems


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping, or ParamsError naming the file and what is wrong with it."""
    name = show(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ParamsError([f"{name}: cannot read: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParamsError([f"{name}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                           "save the file as UTF-8"]) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()
        raise ParamsError([f"{name}: not valid YAML: {' '.join(first[:4])[:300]}"]) from None
    if not isinstance(data, dict):
        raise ParamsError([f"{name}: expected a mapping of keys at the top level, got {type(data).__name__}"])
    return data


def show(path: Path) -> str:
    """A path as a reader sees it: relative to the project root when inside it."""
    try:
        return str(Path(path).resolve().relative_to(paths.project_root()))
    except ValueError:
        return str(path)


def resolve_profile(profile: str, machine: bool = True) -> str:
    """``auto`` -> this machine's profile; ``gpu`` is refused without a GPU unless
    only the files are checked (``machine=False``)."""
    if profile == "auto":
        return detect().default_profile
    if profile not in ("cpu", "gpu"):
        raise ParamsError([f"profile: {profile!r} is not a profile; allowed: auto, cpu, gpu"])
    if not machine:
        return profile
    if profile == "gpu" and not detect().has_cuda_gpu:
        raise ParamsError(["profile: 'gpu' needs an NVIDIA GPU, and none is visible here (NVML finds no device); "
                           "use --profile cpu, or auto to pick what this machine has"])
    if profile == "gpu" and detect().engine_kind != "cuda":
        raise ParamsError([f"profile: 'gpu' needs the CUDA build of vLLM; this environment has "
                           f"{detect().vllm_dist or 'no vLLM'}: reinstall with `make install` on the GPU machine"])
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


def _layers(notebook: str, profile: str, params_file: Any, overrides: dict[str, Any] | None) -> list[Layer]:
    base = paths.params_dir() / notebook / f"{profile}.yaml"
    if not base.is_file():
        have = sorted(p.stem for p in (paths.params_dir() / notebook).glob("*.yaml"))
        raise ParamsError([f"{show(base)}: no such profile file for {notebook!r}; profiles here: "
                           f"{', '.join(have) or 'none'}"])
    layers = [Layer(show(base), read_yaml(base))]
    files = [params_file] if isinstance(params_file, (str, Path)) else list(params_file or [])
    for f in files:
        path = Path(f)
        if not path.is_absolute() and not path.exists():
            path = paths.project_root() / path  # notebooks run from notebooks/: accept root-relative
        layers.append(Layer(show(path), read_yaml(path)))
    if overrides:
        if not isinstance(overrides, dict):
            raise ParamsError([f"overrides: expected a mapping of keys, got {type(overrides).__name__}"])
        layers.append(Layer("overrides", dict(overrides)))
    return layers


def load(notebook: str, schema: type[StudyParams], profile: str = "auto",
         params_file: str | Path | list[str | Path] | tuple[str | Path, ...] | None = None,
         overrides: dict[str, Any] | None = None, machine: bool = True) -> Resolved:
    """Merge and validate a notebook's parameters; raise ParamsError listing every
    problem. ``machine=False`` checks the files only, not whether this machine can
    run them (a GPU profile validated where there is no GPU)."""
    resolved_profile = resolve_profile(profile, machine)
    layers = _layers(notebook, resolved_profile, params_file, overrides)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _deep_merge(merged, layer.data)
    try:
        params = schema.model_validate(merged)
    except ValidationError as exc:
        raise ParamsError(validation_problems(exc, schema, lambda key: _source_of((key,), layers))) from None
    problems = [f"{src}: key {key!r}: {p.message}"
                for p in cross_check(params, machine) for src, key in [_blamed(p.keys, layers)]]
    if problems:
        raise ParamsError(problems)
    return Resolved(notebook, resolved_profile, params, tuple(layer.name for layer in layers))
