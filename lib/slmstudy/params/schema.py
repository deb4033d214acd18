"""The keys every notebook shares, and the checks between keys that a schema of
single fields cannot express (context length, KV-cache capacity, what this
machine's engine can run). Each check names every key it depends on, so the
loader can blame the file that set the deciding value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from .. import analytic, catalog
from ..platform import detect
from .options import (
    DEFAULT_JOB_TIMEOUT_S,
    VALIDATED_ENGINE_KEYS,
    EngineOptions,
    ModelKey,
    Strict,
    TelemetryOptions,
    Workload,
)

GIB = 1024**3


@dataclass(frozen=True)
class Problem:
    """A constraint broken by ``keys`` (dotted); the first key is shown, the file
    blamed is the last one that set any of them."""

    keys: tuple[str, ...]
    message: str


class StudyParams(Strict):
    """Keys every notebook shares."""

    models: list[ModelKey] = Field(min_length=1, max_length=16)
    weights: Literal["dummy", "pretrained"] = "dummy"
    # model key -> local folder with pretrained weights (instead of the hub id)
    weights_paths: dict[str, str] = Field(default_factory=dict)
    engine: EngineOptions = Field(default_factory=EngineOptions)
    telemetry: TelemetryOptions = Field(default_factory=TelemetryOptions)
    seed: int = 0
    config_timeout_s: float = Field(DEFAULT_JOB_TIMEOUT_S, gt=0)

    # Subclasses name their precision and workload keys, so that cross checks
    # can point at the exact key: (dotted key, value).
    def precision_fields(self) -> list[tuple[str, str]]:
        return []

    def skipped_here(self) -> dict[str, str]:
        """Precisions this notebook leaves out on this machine, and why (none by default)."""
        return {}

    def workload_fields(self) -> list[tuple[str, Workload]]:
        return []

    def check(self) -> list[Problem]:
        """Constraints of a notebook's own keys."""
        return []

    def machine_check(self) -> list[Problem]:
        """Constraints of a notebook's own keys that depend on this machine (its cores)."""
        return []


def cross_check(p: StudyParams, machine: bool = True) -> list[Problem]:
    """Every constraint between keys, each as a Problem. ``machine=False`` leaves
    out what depends on this machine (what its engine can run, how much KV cache
    its memory holds): validating a GPU profile's files on a machine without one."""
    out = [*_weights(p), *_engine_args(p), *_parallel(p), *_workloads(p, machine), *p.check()]
    return [*out, *_precisions(p), *_parallel_here(p), *p.machine_check()] if machine else out


def _weights(p: StudyParams) -> list[Problem]:
    out = []
    for model, folder in p.weights_paths.items():
        if model not in p.models:
            out.append(Problem((f"weights_paths.{model}",), f"names a model not in 'models' ({', '.join(p.models)})"))
        elif p.weights == "pretrained" and not (Path(folder) / "config.json").is_file():
            why = "does not exist" if not Path(folder).exists() else "holds no config.json"
            out.append(Problem((f"weights_paths.{model}",), f"folder {folder!r} {why}: a pretrained checkpoint "
                                                            "folder needs config.json and its weight files"))
    for i, key in enumerate(p.models):
        spec = catalog.model(key)
        if p.weights == "pretrained" and spec.tiny and key not in p.weights_paths:
            out.append(Problem((f"models[{i}]", "weights"),
                               f"{key!r} is a CPU stand-in with no published checkpoint: use weights: dummy, "
                               "or name a local checkpoint folder in weights_paths"))
        elif p.weights == "pretrained" and not spec.hf_id and key not in p.weights_paths:
            out.append(Problem(("weights_paths", "weights"), f"pretrained weights for {key!r} need a local folder here"))
    return out


def not_on_this_cpu(prec: str) -> str | None:
    """Why this machine's CPU engine cannot run ``prec`` for want of an instruction set
    its kernels need, or None (a GPU engine, or the CPU has it, or its flags are unknown)."""
    plat = detect()
    support = catalog.precision(prec).engines.get(plat.engine_kind)
    if plat.engine_kind != "cpu" or support is None or not support.needs_cpu_flag:
        return None
    if plat.lacks_cpu_flag(support.needs_cpu_flag):
        return f"{support.needs_cpu_flag_why}, and this CPU has no {support.needs_cpu_flag}"
    return None


def _precisions(p: StudyParams) -> list[Problem]:
    out = []
    plat = detect()
    for key, prec in p.precision_fields():
        support = catalog.precision(prec).engines.get(plat.engine_kind)
        if support is None or support.unsupported:
            why = support.unsupported if support else "no entry in the precision catalog"
            out.append(Problem((key,), f"{prec!r} cannot run on this machine's {plat.engine_kind} engine: {why}"))
        elif (why := not_on_this_cpu(prec)) and prec not in p.skipped_here():
            out.append(Problem((key,), f"{prec!r} cannot run on this CPU: {why} (a profile may list it under "
                                       "where_supported to measure it only where it can)"))
        elif missing := support.missing():
            out.append(Problem((key,), f"{prec!r} needs the Python module(s) {', '.join(missing)} beside vLLM, not "
                                       "installed here (on the lent GPU host: carried in .gpu-wheels/, docs/gpu-host.md)"))
        elif (plat.engine_kind == "cuda" and support.min_capability
              and (plat.compute_capability or 0) < support.min_capability):
            out.append(Problem((key,), f"{prec!r} needs compute capability >= {support.min_capability}; "
                                       f"{plat.gpu_name} has {plat.compute_capability}"))
    return out


def _engine_args(p: StudyParams) -> list[Problem]:
    taken = sorted(set(p.engine.extra_args) & set(VALIDATED_ENGINE_KEYS))
    return [Problem((f"engine.extra_args.{k}",),
                    f"is set by the study itself; use engine.{k}" if k in EngineOptions.model_fields
                    else "is set by the study itself (from the model, precision and weights keys)")
            for k in taken]


def _divisors(n: int, most: int = 8) -> list[int]:
    return [d for d in range(1, most + 1) if n % d == 0]


def _parallel(p: StudyParams) -> list[Problem]:
    """Tensor parallelism splits every layer's attention heads evenly over the GPUs."""
    tp = p.engine.tensor_parallel_size
    out = []
    for model in p.models if tp > 1 else []:
        cfg = catalog.model(model).hf_config()
        heads = int(cfg["num_attention_heads"])
        kv = int(cfg.get("num_key_value_heads", heads))
        # KV heads are split when there are more of them than ranks, else replicated:
        # either way one count must divide the other (vLLM's own check)
        ok = [d for d in _divisors(heads) if (kv % d == 0 if kv >= d else d % kv == 0)]
        if tp not in ok:
            out.append(Problem(("engine.tensor_parallel_size",),
                               f"{tp} does not split {model}'s {heads} attention heads ({kv} KV heads) evenly over "
                               f"the GPUs as vLLM needs; allowed for it: {ok}"))
    return out


def _parallel_here(p: StudyParams) -> list[Problem]:
    """As many GPUs as one engine spans must be present (a CPU engine runs one
    process per rank, each on cores of its own)."""
    tp = p.engine.tensor_parallel_size
    if tp == 1:
        return []
    plat = detect()
    if plat.engine_kind == "cuda" and tp > plat.gpu_count:
        return [Problem(("engine.tensor_parallel_size",),
                        f"{tp} GPUs for one engine; this machine has {plat.gpu_count} ({plat.gpu_name}): allowed "
                        f"1 to {plat.gpu_count}")]
    if plat.engine_kind == "cpu" and tp > plat.cpu_count:
        return [Problem(("engine.tensor_parallel_size",),
                        f"{tp} ranks for one engine; vLLM's CPU engine gives each rank cores of its own and this "
                        f"machine has {plat.cpu_count}: allowed 1 to {plat.cpu_count}")]
    return []


def _workloads(p: StudyParams, machine: bool) -> list[Problem]:
    out = []
    plat = detect()
    for wkey, w in p.workload_fields():
        need = w.input_len + w.output_len
        lengths = (f"{wkey}.input_len", f"{wkey}.output_len")
        if need > p.engine.max_model_len:
            out.append(Problem((*lengths, "engine.max_model_len"),
                               f"{wkey}.input_len + {wkey}.output_len = {need} exceeds engine.max_model_len "
                               f"{p.engine.max_model_len}"))
        batch = max(w.batch_sizes)
        if p.engine.max_num_seqs is not None and batch > p.engine.max_num_seqs:
            out.append(Problem((f"{wkey}.batch_sizes", "engine.max_num_seqs"),
                               f"the largest batch {batch} exceeds engine.max_num_seqs {p.engine.max_num_seqs}"))
        for model in p.models:
            cfg = catalog.model(model).hf_config()
            context = int(cfg.get("max_position_embeddings", 0) or 0)
            if context and need > context:
                out.append(Problem(lengths, f"{wkey}.input_len + {wkey}.output_len = {need} exceeds {model}'s context of "
                                            f"{context} tokens"))
            for _, prec in (p.precision_fields() or [("", "bf16")]) if machine else []:
                capacity = kv_capacity_tokens(model, prec, p.engine, plat.memory_bytes)
                if capacity is not None and batch * need > capacity:
                    out.append(Problem((f"{wkey}.batch_sizes", *lengths, "engine.gpu_memory_utilization"),
                                       f"a batch of {batch} x {need} tokens needs {batch * need:,} tokens of KV "
                                       f"cache; {model} in {prec} can hold at most {capacity:,} on this "
                                       f"{plat.memory_kind} at gpu_memory_utilization {p.engine.gpu_memory_utilization}"))
                    break
    return out


def kv_capacity_tokens(model: str, precision: str, engine: EngineOptions, memory_bytes: int | None) -> int | None:
    """An upper bound of the tokens the KV cache can hold: the memory vLLM may use
    minus the weights, over the KV bytes of one token (vLLM also subtracts
    activations and CUDA graphs, so the real capacity is lower). None when the
    device's memory is unknown."""
    if not memory_bytes:
        return None
    facts = analytic.model_facts(catalog.model(model).hf_config(), catalog.precision(precision), engine.kv_cache_dtype)
    # tensor parallelism: the weights and the KV cache are spread over that many devices
    total = engine.gpu_memory_utilization * memory_bytes * engine.tensor_parallel_size
    free = total - facts.weight_bytes - facts.unread_weight_bytes
    return max(int(free // facts.kv_bytes_per_token), 0)
