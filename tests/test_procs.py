"""Child process groups: a timeout or a finished run leaves no process behind."""

from __future__ import annotations

import sys
import time

import psutil

from slmstudy.engine import procs

# A parent that starts a grandchild and then waits forever (like vLLM's front end
# and its engine core).
TREE = (
    "import subprocess, sys, time\n"
    "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print('grandchild', c.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def _grandchild(log):
    for line in log.read_text().splitlines():
        if line.startswith("grandchild"):
            return int(line.split()[1])
    return None


def test_timeout_kills_the_whole_group(tmp_path):
    log = tmp_path / "log"
    fin = procs.run_logged([sys.executable, "-c", TREE], log, timeout_s=3)
    assert fin.error.startswith("TimeoutError")
    assert fin.leftovers >= 2
    gc = _grandchild(log)
    assert gc is not None
    time.sleep(0.2)
    assert not psutil.pid_exists(gc) or psutil.Process(gc).status() == psutil.STATUS_ZOMBIE


def test_orphans_of_a_finished_child_are_reaped(tmp_path):
    # The child exits at once, leaving its own child running in the group.
    code = ("import subprocess, sys\n"
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "print('grandchild', c.pid, flush=True)\n")
    log = tmp_path / "log"
    fin = procs.run_logged([sys.executable, "-c", code], log, timeout_s=30)
    assert fin.returncode == 0 and fin.error is None and fin.leftovers == 1
    gc = _grandchild(log)
    time.sleep(0.2)
    assert not psutil.pid_exists(gc) or psutil.Process(gc).status() == psutil.STATUS_ZOMBIE


def test_check_callback_stops_the_child(tmp_path):
    fin = procs.run_logged([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log",
                           timeout_s=60, check=lambda elapsed: "stop: enough" if elapsed > 1 else None)
    assert fin.error == "stop: enough" and fin.seconds < 10
