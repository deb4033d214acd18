"""Notices a vLLM engine core that died while the process driving it kept waiting.

vLLM's client watches its engine core itself (a thread waits on the core's process
sentinel and shuts the client down), and usually the worker gets an
``EngineDeadError`` within a second. Once in a CI run (2026-12-06) it did not: the
test that SIGKILLs the engine core found the worker still waiting 300 s later,
so the job would have ended only at its time limit, as a timeout instead of a dead
engine, minutes of a sitting lost. This check does not depend on vLLM noticing:
it finds the engine core processes in the job's process group once, then looks
at those pids (a ``/proc`` stat each, no scan) and stops the job when one has been
gone for ``grace_s`` while the worker still runs. The grace leaves vLLM the first
word: its own error (and the worker's journaled one) says more than ours.

Used as ``procs.run_logged``'s ``check`` with ``attach`` as (part of) its ``on_start``.
"""

from __future__ import annotations

import contextlib
import time

import psutil

from . import procs, vllm_log

# vLLM titles its engine core process "VLLM::EngineCore" (setproctitle, prefix from
# VLLM_PROCESS_NAME_PREFIX) and names its multiprocessing.Process "EngineCore_DP0".
CORE_MARK = "EngineCore"
ERROR = "EngineCoreGone"


def _is_core(p: psutil.Process, mark: str) -> bool:
    with contextlib.suppress(psutil.Error):
        return mark in p.name() or mark in " ".join(p.cmdline())
    return False


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


class CoreWatch:
    """``run_logged``'s check: None while every engine core found is alive (or none was
    found yet), else the reason to stop the job."""

    def __init__(self, grace_s: float = 30.0, scan_every_s: float = 2.0, look_s: float = 600.0,
                 every_s: float = 1.0, mark: str = CORE_MARK) -> None:
        self.grace_s, self.scan_every_s, self.look_s, self.every_s = grace_s, scan_every_s, look_s, every_s
        self.mark = mark
        self.pgid: int | None = None
        self.cores: list[psutil.Process] = []
        self.gone_at: dict[int, float] = {}
        self._last = float("-inf")

    def attach(self, group: procs.Group) -> None:
        self.pgid = group.pgid

    def _scan(self) -> None:
        assert self.pgid is not None
        # not the leader: the process that drives the engine is what we watch it for
        self.cores = [p for p in procs.group_members(self.pgid) if p.pid != self.pgid and _is_core(p, self.mark)]

    def __call__(self, elapsed: float) -> str | None:
        now = time.monotonic()
        if self.pgid is None or now - self._last < (self.every_s if self.cores else self.scan_every_s):
            return None
        self._last = now
        if not self.cores:
            # Scanning the process table is the costly part: only until the cores are found,
            # and not past ``look_s`` (an engine without a core process of its own, such as
            # VLLM_ENABLE_V1_MULTIPROCESSING=0, is then simply not watched while it measures).
            if elapsed <= self.look_s:
                self._scan()
            return None
        for core in self.cores:
            if core.pid not in self.gone_at and _gone(core):
                self.gone_at[core.pid] = now
        for pid, at in self.gone_at.items():
            if now - at >= self.grace_s:
                return (f"{ERROR}: vLLM's engine core process (pid {pid}) ended while the job's process kept "
                        f"waiting for it, still {now - at:.0f} s later; the job was stopped")
        return None


def cause(error: str | None, log: str) -> str | None:
    """The cause of a job this watch stopped (``error`` is ours): vLLM's own words where its
    log has any, else ours, never the SIGKILL we sent the worker; None for any other error."""
    if not (error and error.startswith(ERROR)):
        return None
    return vllm_log.root_cause(log) or vllm_log.died_process(log) or error
