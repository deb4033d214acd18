"""Running another benchmark tool (``vllm bench serve``, GuideLLM) against our
server for one level: its own process group, its log kept, its saved result
parsed into a level row, or its failure's root cause."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine import procs, vllm_log


def run_tool(name: str, cmd: list[str], result: Path, log: Path, timeout_s: float,
             parse: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Run ``cmd`` (which saves its result as JSON at ``result``); returns the journal
    line: status ok and ``parse``'s row, or status failed and the root cause."""
    result.unlink(missing_ok=True)
    t0 = time.time()
    fin = procs.run_logged(cmd, log, timeout_s)
    line: dict[str, Any] = {"command": " ".join(cmd), "t0": t0, "t1": time.time(),
                            "seconds": fin.seconds, "returncode": fin.returncode}
    if fin.error or fin.returncode != 0 or not result.exists():
        text = log.read_text(errors="replace")
        line["error"] = fin.error or vllm_log.root_cause(text) or f"{name} {procs.describe_exit(fin.returncode)}"
        line["status"] = "failed"
        return line
    return {**line, "status": "ok", **parse(json.loads(result.read_text()))}
