"""What this machine can give the edge engine, checked before anything starts.

A pure function returns ``(key, message)`` pairs, which the notebook's schema
turns into the parameter loader's one line per problem (file, key, allowed).
Unknown GGUF file types are refused by the schema's own validator; a GGUF file
asked of the vLLM engine is refused by the precision catalog.
"""

from __future__ import annotations

import os


def cores_present() -> tuple[int, str]:
    """The CPU cores this process may run on (a container's CPU set, not the host's
    count), and where that number comes from."""
    total = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        mine = len(os.sched_getaffinity(0))
        if mine != total:
            return mine, f"this process may run on {mine} of the machine's {total} cores"
        return mine, f"{mine} cores"
    return total, f"{total} cores"


def thread_problems(threads: list[int], cores: tuple[int, str] | None = None,
                    key: str = "threads") -> list[tuple[str, str]]:
    """(key, message) for every thread count this machine cannot give; ``cores``:
    ``cores_present()`` by default."""
    n, where = cores if cores is not None else cores_present()
    return [(f"{key}[{i}]", f"{t} threads asked, but this machine has {n} CPU cores present ({where}): llama.cpp "
                            f"threads beyond the cores would only wait for each other; allowed: 1 to {n}, or auto")
            for i, t in enumerate(threads) if t > n]
