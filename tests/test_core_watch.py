"""A dead engine core stops its job even when the process driving it never notices.

Real processes stand in for vLLM's: a leader that starts a child titled like vLLM's
engine core and then waits forever, never reaping it, the way a worker that missed
the core's death waits for outputs that will not come. The real engine's case (the
core SIGKILLed under a running 03 job) is tests/test_reliability.py's.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from slmstudy.engine import procs, runner
from slmstudy.engine.core_watch import ERROR, CoreWatch

# the child's argv carries the mark, as vLLM's "VLLM::EngineCore" title does
LEADER = (
    "import subprocess, sys, time\n"
    "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', 'VLLM::' + 'Engine' + 'Core'])\n"
    "print('core', c.pid, flush=True)\n"
    "time.sleep(int(sys.argv[1]))\n"
)


def _core_pid(log, within_s=20.0):
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        for line in (log.read_text() if log.exists() else "").splitlines():
            if line.startswith("core "):
                return int(line.split()[1])
        time.sleep(0.05)
    raise AssertionError(f"no core started: {log.read_text()!r}")


def _watch():
    return CoreWatch(grace_s=1.0, scan_every_s=0.1, every_s=0.1, look_s=30)


def test_a_core_that_dies_unnoticed_stops_the_job_after_the_grace(tmp_path):
    log = tmp_path / "log"
    watch = _watch()
    killed = {}

    def kill_core():
        pid = _core_pid(log)
        while not watch.cores:  # found by the scan first, as a started engine's core is
            time.sleep(0.05)
        killed["pid"], killed["at"] = pid, time.monotonic()
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=kill_core, daemon=True).start()
    fin = procs.run_logged([sys.executable, "-c", LEADER, "600"], log, timeout_s=60,
                           check=watch, on_start=watch.attach, poll_s=0.05)
    assert fin.error is not None and fin.error.startswith(f"{ERROR}: ")
    stopped = time.monotonic()
    assert f"(pid {killed['pid']})" in fin.error
    # stopped after the 1 s grace, long before the 60 s limit; a leader left to itself sleeps 600 s
    assert 1.0 <= stopped - killed["at"] < 10


def test_a_living_core_leaves_the_job_alone(tmp_path):
    watch = _watch()
    fin = procs.run_logged([sys.executable, "-c", LEADER, "3"], tmp_path / "log", timeout_s=60,
                           check=watch, on_start=watch.attach, poll_s=0.05)
    assert fin.error is None and fin.returncode == 0
    assert len(watch.cores) == 1 and not watch.gone_at


def test_without_a_core_nothing_is_watched_after_the_look(tmp_path):
    # an engine with no core process of its own (the leader's own title is not a core: it is
    # what drives the engine): the scan stops after look_s, nothing is stopped
    watch = CoreWatch(grace_s=0.5, scan_every_s=0.1, every_s=0.1, look_s=0.5)
    fin = procs.run_logged([sys.executable, "-c", "import time; time.sleep(2)", "VLLM::EngineCore"], tmp_path / "log",
                           timeout_s=30,
                           check=watch, on_start=watch.attach, poll_s=0.05)
    assert fin.error is None and watch.cores == []


def test_the_cause_is_vllms_own_line_else_ours_never_the_kill_we_sent():
    ours = f"{ERROR}: vLLM's engine core process (pid 77) ended while the job's process kept waiting for it"
    died = "(EngineCore_DP0 pid=77) ... \nERROR 12-07 [core_client.py:1] Engine core proc EngineCore_DP0 died unexpectedly, shutting down client.\n"
    # the worker's SIGKILL (-9) is ours, not a cause
    assert runner.explain_failure(ours, -9, "", None) == (ours, ours)
    assert runner.explain_failure(ours, -9, died, None) == (
        ours, "vLLM: Engine core proc EngineCore_DP0 died unexpectedly")
    # a worker that died by itself still gets its signal named
    error, cause = runner.explain_failure(None, -9, "", None)
    assert error == cause == "worker killed by signal 9 (SIGKILL)"
