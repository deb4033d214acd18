"""Where a result came from: hardware, driver, CUDA, torch, vLLM, Python, git commit, host.

Gathered in a child process for torch and vLLM versions, so the notebook kernel
never imports CUDA libraries it does not need.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import socket
import subprocess
import sys
import time
from typing import Any

from .. import paths
from ..platform import detect

_PROBE = r"""
import json, sys
out = {}
try:
    import torch
    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.version.cuda
    out["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out["gpu_sm_count"] = p.multi_processor_count
        out["gpu_l2_mib"] = getattr(p, "L2_cache_size", 0) / 2**20
except Exception as e:
    out["torch_error"] = repr(e)
print(json.dumps(out))
"""


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=paths.project_root(), capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def capture() -> dict[str, Any]:
    plat = detect()
    # A copy of the tree sent elsewhere (the lent GPU host gets one) says its
    # commit through SLMSTUDY_GIT_COMMIT; it wins over git because such a copy
    # may carry a stale .git (one recorded an older HEAD than the code it ran),
    # whose dirtiness would be just as stale: unknown then.
    named = os.environ.get("SLMSTUDY_GIT_COMMIT")
    env: dict[str, Any] = {
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "vllm_dist": plat.vllm_dist,
        "vllm": plat.vllm_version,
        "engine_kind": plat.engine_kind,
        "git_commit": named or _git("rev-parse", "HEAD"),
        "git_dirty": None if named else bool(_git("status", "--porcelain", "--untracked-files=no")),
        "packages": {d: _version(d) for d in ("pandas", "numpy", "pyarrow", "nvidia-ml-py", "papermill", "transformers")},
    }
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
        env.update(json.loads(probe.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        env["torch_error"] = repr(exc)
    from ..telemetry.cpu_reader import CpuReader

    env.update(CpuReader().device_info())
    if plat.has_cuda_gpu:
        try:
            from ..telemetry.nvml_reader import NvmlReader

            reader = NvmlReader(0)
            env.update(reader.device_info())
            reader.close()
        except Exception as exc:
            env["nvml_error"] = repr(exc)
    return env
