"""vLLM engine arguments for a configuration, as keyword arguments (offline
engine) or command-line flags (``vllm serve``, ``vllm bench latency``), so that
every tool we compare runs the very same engine."""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import catalog
from ..modeldir import ModelSource
from ..params import EngineOptions
from ..platform import detect

EXTENSION = "slmstudy.engine.vllm_ext.SlmstudyWorkerExtension"


def engine_kwargs(source: ModelSource, precision_key: str, engine: EngineOptions, seed: int) -> dict[str, Any]:
    prec = catalog.precision(precision_key)
    kw: dict[str, Any] = {
        "model": source.model,
        "load_format": source.load_format,
        "dtype": prec.dtype,
        "max_model_len": engine.max_model_len,
        "gpu_memory_utilization": engine.gpu_memory_utilization,
        "enforce_eager": engine.enforce_eager,
        "enable_prefix_caching": engine.enable_prefix_caching,
        "kv_cache_dtype": engine.kv_cache_dtype,
        "seed": seed,
        # Dummy weights come without a tokenizer: prompts are token IDs and
        # outputs are never detokenised.
        "skip_tokenizer_init": source.weights == "dummy",
    }
    if prec.quantization:
        kw["quantization"] = prec.quantization
    if source.hf_config_path:
        # vLLM reads the architecture from here, not from the weights file (GGUF)
        kw["hf_config_path"] = source.hf_config_path
    if prec.gguf_file_type:
        # The GGUF loader's quantization method; vllm-gguf-plugin would infer it (and the
        # load format) from a ".gguf" model, but the recorded arguments say it outright.
        kw["quantization"] = "gguf"
    for opt in ("max_num_seqs", "max_num_batched_tokens"):
        if getattr(engine, opt) is not None:
            kw[opt] = getattr(engine, opt)
    if engine.tensor_parallel_size > 1:
        kw["tensor_parallel_size"] = engine.tensor_parallel_size
    backend = engine.attention_backend or prec.attention_backend
    if backend and detect().engine_kind == "cuda":
        # FlashAttention has no fp32 kernels; the CPU engine has a single backend.
        kw["attention_backend"] = backend
    kw.update(engine.extra_args)
    return kw


# NVLink multicast (NVLS) off on multi-GPU hosts: the lent hosts' fabric does not
# support it, and NCCL, torch's symmetric memory and NVSHMEM would each try it.
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def engine_env(precision_key: str, engine: EngineOptions | None = None) -> dict[str, str]:
    """Environment variables this machine's engine needs for the precision (catalog
    data) and, when it spans several GPUs, for the GPUs' communication."""
    kind = detect().engine_kind
    support = catalog.precision(precision_key).engines.get(kind)
    env = dict(support.env) if support else {}
    ranks = engine.tensor_parallel_size if engine is not None else 1
    if kind == "cuda" and ranks > 1:
        env.update(NO_MULTICAST)
    elif kind == "cpu" and (ranks > 1 or _narrowed()):
        # several ranks, or a slot of the host's cores (measure.slots): bind to the
        # cores this process may use, not to the NUMA node vLLM would pick
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_binding(ranks)
    return env


CORE_START_ENV = "VLLM_WORKER_MULTIPROC_METHOD"


def core_start_env() -> dict[str, str]:
    """For a process running vLLM's command line (``vllm serve``, ``vllm bench``): its
    engine core *forked*, unless this process's environment says otherwise. vLLM's CLI
    defaults to spawn, which re-imports vLLM in the engine core process (13 s of each
    ``vllm bench`` process's 39 s on the lent H100, 2026-12-07; ~20 s of a server's
    start); fork is vLLM's default as a library, how our offline engines start theirs,
    so both sides of a cross-check start alike. Safe: the CLI's process initialises no
    CUDA before its engine, and vLLM switches to spawn itself if it had."""
    import os

    return {} if CORE_START_ENV in os.environ else {CORE_START_ENV: "fork"}


def core_start_method(env: dict[str, str]) -> str | None:
    """How a process started with ``env`` starts its engine core (None: vLLM's CLI default, spawn)."""
    import os

    return env.get(CORE_START_ENV, os.environ.get(CORE_START_ENV))


def _narrowed() -> bool:
    """Whether this process may use fewer cores than the machine has (a slot's affinity)."""
    import os

    return len(os.sched_getaffinity(0)) < (os.cpu_count() or 1)


def cpu_binding(ranks: int, cores: list[int] | None = None) -> str:
    """vLLM's CPU engine binds each rank's threads to cores of its own, by default one
    NUMA node per rank (a 2-core machine has one node and refuses two ranks); this
    splits the cores this process may use evenly instead: ``0-3|4-7``."""
    import os

    cores = sorted(cores if cores is not None else os.sched_getaffinity(0))
    per = len(cores) // ranks
    if per < 1:
        raise ValueError(f"{ranks} ranks need a core each; {len(cores)} available")
    groups = [cores[i * per:(i + 1) * per] for i in range(ranks)]
    return "|".join(",".join(map(str, g)) for g in groups)


def check_extra_args(names: list[str]) -> list[str]:
    """Names in ``extra_args`` that vLLM's engine arguments do not have."""
    if not names:
        return []
    from vllm.engine.arg_utils import AsyncEngineArgs

    known = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    return [n for n in names if n not in known]


def cli_flags(kwargs: dict[str, Any]) -> list[str]:
    """``{"max_model_len": 4096, "enforce_eager": True}`` -> ``--max-model-len 4096 --enforce-eager``."""
    flags: list[str] = []
    for key, value in kwargs.items():
        if key == "model":
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            # vLLM's boolean options take --x / --no-x.
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (dict, list)):
            import json

            flags += [flag, json.dumps(value)]
        elif value is not None:
            flags += [flag, str(value)]
    return flags
