"""Where a result came from: hardware, driver, CUDA, torch, vLLM, Python, git commit, host.

Gathered in a child process for torch and vLLM versions, so the notebook kernel
never imports CUDA libraries it does not need.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from typing import Any

from .. import paths
from ..errors import SlmstudyError
from ..platform import MEASURED_ON_ENV, MeasuredOnError, detect, read_environment

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
    """git in the checkout the code runs from (not the project root, which may hold data only)."""
    try:
        return subprocess.run(["git", *args], cwd=paths.PACKAGE_DIR, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


_FULL_COMMIT = re.compile(r"[0-9a-f]{40}")


@functools.cache
def identity() -> dict[str, Any]:
    """Which code measures: the commit, whether the tree differs from it (and a
    digest of the difference, so an interrupted run on the same edited tree can
    resume), slmstudy's and vLLM's versions. Results of another identity are
    re-measured unless a run explicitly reuses them.

    A copy of the tree sent elsewhere (the lent GPU host gets one) says its commit
    through SLMSTUDY_GIT_COMMIT; it wins over git because such a copy may carry a
    stale .git (one recorded an older HEAD than the code it ran), whose dirtiness
    would be just as stale: unknown (None) then."""
    from .. import __version__

    named = os.environ.get("SLMSTUDY_GIT_COMMIT")
    if named is not None and not _FULL_COMMIT.fullmatch(named):
        # An abbreviation can be mistyped into another commit's prefix or none at all
        # (2026-12-05: "3663624a" for 3663624c...), and every row it measures would carry
        # it: only a whole commit id, as `git rev-parse HEAD` prints it, is accepted.
        raise SlmstudyError(
            f"environment variable SLMSTUDY_GIT_COMMIT={named!r} is not a full commit id: give the "
            "40 lowercase hex digits of `git rev-parse HEAD` of the tree that runs"
        )
    dirty: bool | None = None
    diff = None
    if not named:
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
        if dirty:
            diff = hashlib.sha256((_git("diff", "HEAD") or "").encode()).hexdigest()[:12]
    plat = detect()
    return {"git_commit": named or _git("rev-parse", "HEAD"), "git_dirty": dirty, "git_diff": diff,
            "slmstudy": __version__, "vllm": f"{plat.vllm_dist} {plat.vllm_version}"}


def identity_label(ident: dict[str, Any]) -> str:
    """A short name: ``8663340a1b2c`` or ``8663340a1b2c+dirty:3f2a...``."""
    commit = (ident.get("git_commit") or "unknown")[:12]
    if ident.get("git_dirty"):
        commit += f"+dirty:{ident.get('git_diff')}"
    elif ident.get("git_dirty") is None:
        commit += "?"
    return commit


def capture() -> dict[str, Any]:
    plat = detect()
    ident = identity()
    env: dict[str, Any] = {
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "vllm_dist": plat.vllm_dist,
        "vllm": plat.vllm_version,
        "engine_kind": plat.engine_kind,
        "git_commit": ident["git_commit"],
        "git_dirty": ident["git_dirty"],
        "git_diff": ident["git_diff"],
        "slmstudy": ident["slmstudy"],
        "identity": identity_label(ident),
        "packages": {d: _version(d) for d in ("pandas", "numpy", "pyarrow", "nvidia-ml-py", "papermill", "transformers")},
    }
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
        env.update(json.loads(probe.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        env["torch_error"] = repr(exc)
    from ..telemetry.cpu_reader import CpuReader

    env.update(CpuReader().device_info())
    measured_on = os.environ.get(MEASURED_ON_ENV)
    if measured_on:
        # analysing a pool measured elsewhere: this record is of the analysing host; the
        # platform fields above are the measuring machine's, whose record is named here,
        # and so is the device (a fresh run folder shows it before its rows are collected)
        env["measured_on"] = measured_on
        env.update(_device_fields(measured_on))
    elif plat.has_cuda_gpu:
        try:
            from ..telemetry.nvml_reader import NvmlReader

            reader = NvmlReader(0)
            env.update(reader.device_info())
            reader.close()
        except Exception as exc:
            env["nvml_error"] = repr(exc)
    return env


def _device_fields(measured_on: str) -> dict[str, Any]:
    """The GPU fields of the environment record ``measured_on`` names; none when it has
    no GPU or cannot be read."""
    try:
        measured, _ = read_environment(measured_on)
    except MeasuredOnError:
        return {}
    keys = ("driver_version", "cuda_driver_version", "compute_capability")
    return {k: v for k, v in measured.items() if k.startswith("gpu_") or k in keys}
