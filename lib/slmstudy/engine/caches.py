"""Where an engine keeps what it compiles, and what a cold start empties.

vLLM caches its ``torch.compile`` artefacts, inductor's generated kernels, Triton's
compiled kernels and its model-inspection results (``modelinfos``: without them
a start imports vLLM once more in a subprocess). Every engine of one model in a
study (the measured engine, ``vllm bench latency``, ``vllm serve``) shares one
cache root, so only the first start of each configuration compiles; a cold
start empties the root first, paying everything a fresh machine pays.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def env(root: Path) -> dict[str, str]:
    """Environment variables that point vLLM, inductor and Triton at ``root``."""
    return {
        "VLLM_CACHE_ROOT": str(root / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
        "TRITON_CACHE_DIR": str(root / "triton"),
    }


def state(root: Path) -> str:
    """"warm" when the root holds anything, else "empty"."""
    return "warm" if root.is_dir() and any(root.rglob("*")) else "empty"


def prepare(root: Path, cold: bool) -> str:
    """Empty the root for a cold start; returns what the start found: "emptied", "warm" or "empty"."""
    if cold:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        return "emptied"
    root.mkdir(parents=True, exist_ok=True)
    return state(root)
