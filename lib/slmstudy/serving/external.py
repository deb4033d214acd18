"""Running another benchmark tool (``vllm bench serve``, GuideLLM) against our
server for one level: in a process of its own, or in the tool's host (``ToolHost``,
imported once per server), its log kept, its saved result parsed into a level row,
or its failure's root cause."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from ..engine import procs, vllm_log

HOST_IMPORT_TIMEOUT_S = 600.0  # a tool's import: 14 s on 2 cores, ~20 s on the lent H100


class ToolHost:
    """A tool's host process (``serving.tool_host``), started at its first level and
    kept until ``close``: each level is a line on its stdin and a done file back.

    A level that overruns its time limit kills the host's whole process group (the
    tool and anything it started), as a process of its own would have been; the
    next level starts a new host. Processes a level leaves behind in the host's
    group are killed before the next level, so no level runs beside another's
    leftovers."""

    def __init__(self, tool: str, log: Path, env: dict[str, str] | None = None):
        self.tool, self.log, self.env = tool, log, env
        self.group: procs.Group | None = None
        self.imported_s: float | None = None
        self.levels = 0  # levels run by the current host

    def _start(self) -> str | None:
        ready = self.log.with_name(self.log.name + ".ready")
        ready.unlink(missing_ok=True)
        self.group = procs.start_group([sys.executable, "-m", "slmstudy.serving.tool_host", self.tool, str(ready)],
                                       self.log, self.env, stdin=subprocess.PIPE)
        self.levels = 0
        while not ready.exists():
            if self.group.proc.poll() is not None or time.monotonic() - self.group.started > HOST_IMPORT_TIMEOUT_S:
                self.close()
                text = self.log.read_text(errors="replace")
                return vllm_log.root_cause(text) or f"the {self.tool} host did not start ({self.log.name})"
            time.sleep(0.1)
        self.imported_s = float(json.loads(ready.read_text())["imported_s"])
        return None

    def run(self, argv: list[str], log: Path, timeout_s: float) -> tuple[procs.Finished, dict[str, Any]]:
        """Run one level (``argv`` without the program); its output in ``log``."""
        log.write_bytes(b"")
        if self.group is not None and self.group.proc.poll() is not None:
            self.close()  # it ended between levels
        if self.group is None:
            if problem := self._start():
                return procs.Finished(1, problem, 0, 0.0), {}
        assert self.group is not None and self.group.proc.stdin is not None
        done = log.with_name(log.name + ".done")
        done.unlink(missing_ok=True)
        facts = {"ran_in": "tool host", "host_pid": self.group.proc.pid, "host_level": self.levels + 1,
                 "host_import_s": self.imported_s if self.levels == 0 else None, "sent_at": time.time()}
        before = self._members()  # the host and what its import started (a resource tracker, say)
        t0 = time.monotonic()
        error = None
        try:
            self.group.proc.stdin.write((json.dumps({"argv": argv, "log": str(log), "done": str(done)}) + "\n").encode())
            self.group.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died waiting: seen below
        while not done.exists():
            if self.group.proc.poll() is not None:
                error = f"the {self.tool} host ended with {procs.describe_exit(self.group.proc.returncode)}"
                break
            if time.monotonic() - t0 > timeout_s:
                error = f"TimeoutError: did not finish within {timeout_s:.0f} s"
                break
            time.sleep(0.05)
        seconds = time.monotonic() - t0
        self.levels += 1
        if error:
            code = self.group.proc.returncode
            leftovers = self.close()
            return procs.Finished(1 if code is None else code, error, leftovers, seconds), facts
        leftovers = self._kill_leftovers(before)
        reply = json.loads(done.read_text())
        facts["client_cpu_s"] = reply.get("cpu_s")  # the tool's CPU over its level (tool_host.cpu_seconds)
        return procs.Finished(int(reply["returncode"]), None, leftovers, seconds), facts

    def _members(self) -> set[int]:
        assert self.group is not None
        out = set()
        for p in procs.group_members(self.group.pgid):
            with contextlib.suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.add(p.pid)
        return out

    def _kill_leftovers(self, before: set[int]) -> int:
        """Kill the processes the level started and left running in the host's group;
        returns how many there were."""
        left = []
        for pid in self._members() - before:
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                p.kill()
                left.append(p)
        psutil.wait_procs(left, timeout=5)
        return len(left)

    def close(self) -> int:
        """End the host: stdin closed (it exits), then its group reaped."""
        if self.group is None:
            return 0
        with contextlib.suppress(OSError):
            assert self.group.proc.stdin is not None
            self.group.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.group.proc.wait(timeout=10)
        group, self.group = self.group, None
        return group.reap()


def run_tool(name: str, cmd: list[str], result: Path, log: Path, timeout_s: float,
             parse: Callable[[dict[str, Any]], dict[str, Any]], host: ToolHost | None = None) -> dict[str, Any]:
    """Run ``cmd`` (``python -m MODULE ARGS``, which saves its result as JSON at
    ``result``) in a process of its own, or its ARGS in ``host``; returns the journal
    line: status ok and ``parse``'s row, or status failed and the root cause.
    ``command`` is the line to run it alone."""
    result.unlink(missing_ok=True)
    t0 = time.time()
    facts: dict[str, Any] = {}
    if host is not None:
        fin, facts = host.run(cmd[3:], log, timeout_s)  # the host is the `python -m MODULE` part
        t0 = facts.pop("sent_at", t0)  # the level's start, not the host's import before it
    else:
        fin = procs.run_logged(cmd, log, timeout_s)
    line: dict[str, Any] = {"command": " ".join(cmd), "t0": t0, "t1": time.time(),
                            "seconds": fin.seconds, "returncode": fin.returncode, "leftovers": fin.leftovers, **facts}
    if fin.error or fin.returncode != 0 or not result.exists():
        text = log.read_text(errors="replace")
        line["error"] = fin.error or vllm_log.root_cause(text) or f"{name} {procs.describe_exit(fin.returncode)}"
        line["status"] = "failed"
        return line
    return {**line, "status": "ok", **parse(json.loads(result.read_text()))}
