"""CPU and memory of the machine and of the engine's process tree.

Without an NVIDIA GPU this is the whole trace: the CPU engine runs its forward
passes in a child process of the measuring process, and the tree's CPU time is
the CPU-side analogue of GPU activity. With one, the host part is added to every
GPU sample: small-batch decoding is bound by the host, so how busy the engine's
processes were, and how much CPU time the hypervisor gave to other guests
(steal), explain speed differences that the GPU's own counters cannot.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import psutil


class CpuReader:
    # Walking the process tree costs more than reading it: refresh it this often.
    TREE_REFRESH_S = 1.0

    def __init__(self, root_pid: int | None = None):
        self.root_pid = root_pid or os.getppid()
        self._procs: dict[int, psutil.Process] = {}
        self._tree_at = 0.0
        psutil.cpu_percent(interval=None)  # prime: the first call returns 0.0
        psutil.cpu_times_percent(interval=None)

    def device_info(self) -> dict[str, Any]:
        freq = psutil.cpu_freq()
        return {
            "cpu_model": _cpu_model(),
            "cpu_count_logical": psutil.cpu_count(logical=True),
            "cpu_count_physical": psutil.cpu_count(logical=False),
            "cpu_freq_max_mhz": freq.max if freq else None,
            "memory_total_mib": psutil.virtual_memory().total / 2**20,
        }

    def tree(self, pids: set[int] | None = None) -> list[psutil.Process]:
        """The processes to count: ``pids`` when the caller tracks them (the sampler
        walks the tree once a second already), else the root and its descendants;
        Process objects are kept so cpu_percent has history."""
        if pids is None:
            if time.monotonic() - self._tree_at < self.TREE_REFRESH_S:
                return list(self._procs.values())
            self._tree_at = time.monotonic()
            try:
                root = psutil.Process(self.root_pid)
                pids = {root.pid, *(c.pid for c in root.children(recursive=True))}
            except psutil.NoSuchProcess:
                return []
        alive = {}
        me = os.getpid()  # the sampler is a child of the root too; do not count it
        for pid in pids - {me}:
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    continue
            alive[pid] = proc
        self._procs = alive
        return list(alive.values())

    def sample(self, pids: set[int] | None = None) -> dict[str, Any]:
        vm = psutil.virtual_memory()
        return {"t": time.time(), **self.host_sample(pids), "mem_used_mib": (vm.total - vm.available) / 2**20}

    def host_sample(self, pids: set[int] | None = None) -> dict[str, Any]:
        """Machine CPU %, steal % (Linux guests: time a vCPU waited for the host),
        and the engine process tree's CPU % (100 = one core) and resident memory."""
        row: dict[str, Any] = {"cpu_pct": psutil.cpu_percent(interval=None)}
        steal = getattr(psutil.cpu_times_percent(interval=None), "steal", None)
        if steal is not None:
            row["cpu_steal_pct"] = steal
        cpu = rss = 0.0
        for p in self.tree(pids):
            try:
                with p.oneshot():
                    cpu += p.cpu_percent(interval=None)
                    rss += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        row["proc_cpu_pct"] = cpu
        row["proc_rss_mib"] = rss / 2**20
        return row

    def close(self) -> None:
        pass


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
