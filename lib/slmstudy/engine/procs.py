"""Child processes in their own process group: started, watched, and always reaped.

vLLM starts further processes (engine core, workers, a server's API processes);
a process group per child lets one signal reach all of them, so no engine
process outlives its run, whatever way the run ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil


def group_members(pgid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(p.pid) == pgid:
                out.append(p)
    return out


def kill_group(pgid: int, grace_s: float = 10.0) -> int:
    """SIGTERM the process group, then SIGKILL whatever is left. Returns how many were alive."""
    members = group_members(pgid)
    if not members:
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=grace_s)
    if alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
    return len(members)


@dataclass
class Finished:
    returncode: int
    error: str | None  # why we stopped it (timeout, a check), None if it ended by itself
    leftovers: int  # processes of its group still alive when it ended, then killed
    seconds: float


def run_logged(cmd: list[str], log_path: Path, timeout_s: float, env: dict[str, str] | None = None,
               check: Callable[[float], str | None] | None = None, poll_s: float = 0.5) -> Finished:
    """Run ``cmd`` with stdout and stderr to ``log_path``; stop it on timeout or when
    ``check(elapsed)`` returns a reason. The group is killed in every case, also on
    KeyboardInterrupt (which is re-raised)."""
    t0 = time.monotonic()
    error = None
    # Plain logs: Jupyter kernels export FORCE_COLOR, which makes vLLM colour its
    # log lines even into a file.
    child_env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", VLLM_LOGGING_COLOR="0", **(env or {}))
    child_env.pop("FORCE_COLOR", None)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env, start_new_session=True)
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - t0
                if elapsed > timeout_s:
                    error = f"TimeoutError: did not finish within {timeout_s:.0f} s"
                    break
                if check and (reason := check(elapsed)):
                    error = reason
                    break
                time.sleep(poll_s)
        finally:
            leftovers = kill_group(proc.pid)
            returncode = proc.wait()
    return Finished(returncode, error, leftovers, time.monotonic() - t0)
