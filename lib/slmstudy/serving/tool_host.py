"""One process per benchmark tool and server that imports the tool once and runs it
level after level: ``python -m slmstudy.serving.tool_host vllm|guidellm``.

Why: the serving cross-check runs ``vllm bench serve`` and GuideLLM three levels in
three rounds per model, and each fresh ``vllm bench serve`` process spent most of
its ~30 s on the lent H100 importing vLLM (14 s on this 2-core machine) for a level
that lasts 2-20 s: the import, not the measurement, set the layer's length. The
import still happens once per server, before the tool's first level, with nothing
measured beside it; between levels the host waits on its stdin (blocked, no CPU)
while the other tools take their turns.

Each request is one line on stdin, ``{"argv": [...], "log": PATH, "done": PATH}``:
the tool's command line without the program (``bench serve ...``, ``run ...``),
exactly what ``python -m slmstudy.engine.vllm_cli`` or ``python -m guidellm`` is
given when run alone. While it runs, the process's stdout and stderr (file
descriptors 1 and 2, so the tool's loggers and any process it starts too) go to
``log``; when it ends, ``done`` gets ``{"returncode": N, "imported_s": S, "cpu_s": C}``,
C the CPU seconds the level used in the host and in the processes it started and
waited for (GuideLLM's workers): beside a server whose host CPU paces decoding, a
load generator's own CPU is part of what it measures, and our client records its
own (``client_cpu_s``) for the same comparison. The
parent (``external.ToolHost``) kills the host's process group on a timeout and
starts a new host for the next level.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ..atomic import write_json
from ..engine import procs

Runner = Callable[[list[str]], int]


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message"): printed, as the interpreter would
    return 1


def _vllm() -> Runner:
    from ..engine import vllm_cli

    vllm_cli._import()
    importlib.import_module("vllm.benchmarks.serve")  # what `bench serve` runs: now, not in the first level
    from vllm.entrypoints.cli.main import main

    def run(argv: list[str]) -> int:
        sys.argv = ["vllm", *argv]
        main()
        return 0

    return run


def _guidellm() -> Runner:
    importlib.import_module("guidellm.benchmark.entrypoints")  # what `guidellm run` runs
    from guidellm.__main__ import cli

    def run(argv: list[str]) -> int:
        # standalone_mode=False: click returns (or raises) instead of exiting the host
        cli.main(args=argv, prog_name="guidellm", standalone_mode=False)
        return 0

    return run


TOOLS: dict[str, Callable[[], Runner]] = {"vllm": _vllm, "guidellm": _guidellm}


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended and been waited
    for (user and system): a level's share is the difference around it."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def serve(tool: str, ready: Path) -> None:
    t0 = time.perf_counter()
    runner = TOOLS[tool]()
    imported_s = time.perf_counter() - t0
    write_json(ready, {"imported_s": imported_s, "pid": os.getpid()})
    print(f"{tool} imported in {imported_s:.1f} s; waiting for levels", flush=True)
    keep_out, keep_err = os.dup(1), os.dup(2)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        procs.output_to(req["log"])
        cpu0 = cpu_seconds()
        try:
            code = runner(req["argv"])
        except SystemExit as exc:
            code = _exit_code(exc)
        except Exception:  # the tool's failure is the level's, not the host's: logged, reported
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(keep_out, 1)
            os.dup2(keep_err, 2)
        write_json(Path(req["done"]), {"returncode": code, "imported_s": imported_s, "cpu_s": cpu_seconds() - cpu0})


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in TOOLS:
        sys.exit(f"usage: python -m slmstudy.serving.tool_host {{{'|'.join(TOOLS)}}} READY_PATH")
    serve(sys.argv[1], Path(sys.argv[2]))


if __name__ == "__main__":
    main()
