"""What this machine can give the edge engine, checked before anything starts.

A pure function returns ``(key, message)`` pairs, which the notebook's schema
turns into the parameter loader's one line per problem (file, key, allowed).
Unknown GGUF file types are refused by the schema's own validator; a GGUF file
asked of the vLLM engine is refused by the precision catalog.
"""

from __future__ import annotations

import os

from ..platform import MEASURED_ON_ENV, detect


def cores_present() -> tuple[int, str]:
    """The CPU cores the study may use, and where that number comes from: this
    process's CPU set, or, analysing a pool measured elsewhere (``--measured-on``), the
    measuring machine's, so "auto" plans the thread counts that were measured there."""
    n = detect().cpu_count
    if os.environ.get(MEASURED_ON_ENV):
        return n, f"{n} cores, those of the machine that measured"
    total = os.cpu_count() or 1
    if n != total:
        return n, f"this process may run on {n} of the machine's {total} cores"
    return n, f"{n} cores"


def thread_problems(threads: list[int], cores: tuple[int, str] | None = None,
                    key: str = "threads") -> list[tuple[str, str]]:
    """(key, message) for every thread count this machine cannot give; ``cores``:
    ``cores_present()`` by default."""
    n, where = cores if cores is not None else cores_present()
    return [(f"{key}[{i}]", f"{t} threads asked, but this machine has {n} CPU cores present ({where}): llama.cpp "
                            f"threads beyond the cores would only wait for each other; allowed: 1 to {n}, or auto")
            for i, t in enumerate(threads) if t > n]
