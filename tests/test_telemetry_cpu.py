"""The sampler process on a machine without an NVIDIA GPU: it falls back to CPU
and memory, says so, samples at the asked rate, and never outlives its parent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from slmstudy.platform import detect
from slmstudy.telemetry.sampler import Sampler

pytestmark = pytest.mark.skipif(detect().has_cuda_gpu, reason="checks the CPU fallback")


def test_cpu_fallback_samples_at_rate_and_stops(tmp_path):
    s = Sampler(tmp_path / "trace.jsonl", interval_ms=50)
    info = s.start()
    assert info["backend"] == "cpu"
    assert "NVML" in info["fallback_reason"]
    pid = s.proc.pid
    time.sleep(2.0)
    s.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    rows = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert 30 <= len(rows) <= 45, len(rows)  # 20 Hz for ~2 s
    gaps = [b["t"] - a["t"] for a, b in zip(rows, rows[1:])]
    assert max(gaps) < 0.15
    assert {"cpu_pct", "mem_used_mib", "proc_cpu_pct", "proc_rss_mib"} <= rows[-1].keys()
    if sys.platform == "linux":  # /proc/stat has a steal column (0 outside a VM)
        assert all(0 <= r["cpu_steal_pct"] <= 100 for r in rows[1:])


def test_process_tree_cpu_is_measured(tmp_path):
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        s = Sampler(tmp_path / "trace.jsonl", interval_ms=100, root_pid=busy.pid)
        s.start()
        time.sleep(1.5)
        s.stop()
    finally:
        busy.kill()
    rows = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert max(r["proc_cpu_pct"] for r in rows[2:]) > 50  # one busy core reads ~100


def test_sampler_exits_when_its_parent_dies(tmp_path):
    code = (
        "import time, sys\n"
        "from slmstudy.telemetry.sampler import Sampler\n"
        f"s = Sampler({str(tmp_path / 't.jsonl')!r}, 50); s.start()\n"
        "print(s.proc.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.time() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.time() < deadline, "sampler outlived its parent"
        time.sleep(0.1)


def test_a_sampler_that_cannot_start_does_not_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    monkeypatch.setattr(sys, "executable", os.path.join(str(tmp_path), "no-such-python"))
    s = Sampler(tmp_path / "trace.jsonl")
    info = s.start()
    assert info["backend"] == "none" and info["fallback_reason"]
    s.stop()
