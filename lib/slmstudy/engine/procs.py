"""Child processes in their own process group: started, watched, and always reaped.

vLLM starts further processes (engine core, workers, a server's API processes);
a process group per child lets one signal reach all of them. Three guards keep
any of them from outliving its run:

* the normal path and exceptions (also KeyboardInterrupt) kill the group in a
  ``finally`` block;
* a watchdog process beside every group kills it when the process that started
  it dies without running any ``finally`` (SIGKILL, ``os._exit``, a dead kernel);
* ``kill_live_groups`` lets a signal handler (SIGTERM from ``timeout``) kill every
  group this process still holds before it exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..atomic import write_json

# Process groups this process started and has not reaped yet (pgid -> command).
_LIVE: dict[int, str] = {}


def group_members(pgid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(p.pid) == pgid:
                out.append(p)
    return out


def _signal0(send: Callable[[int, int], None], ident: int) -> bool:
    """Whether a process (group) exists: signal 0 is delivered to none."""
    try:
        send(ident, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but is another user's
        return True
    return True


def group_alive(pgid: int) -> bool:
    return _signal0(os.killpg, pgid)


def pid_alive(pid: int) -> bool:
    return _signal0(os.kill, pid)


def kill_group(pgid: int, grace_s: float = 10.0) -> int:
    """SIGTERM the process group, then SIGKILL whatever is left. Returns how many were alive."""
    members = group_members(pgid)
    if not members:
        return 0
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
        os.killpg(pgid, signal.SIGCONT)  # a stopped member (a held standby) acts on SIGTERM only once continued
    _, alive = psutil.wait_procs(members, timeout=grace_s)
    if alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
    return len(members)


def kill_live_groups(grace_s: float = 5.0) -> list[int]:
    """Kill every group this process started and still holds (for signal handlers)."""
    killed = []
    for pgid in list(_LIVE):
        if kill_group(pgid, grace_s):
            killed.append(pgid)
        _LIVE.pop(pgid, None)
    return killed


def plain_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an engine process: unbuffered, uncoloured logs.

    Jupyter kernels export FORCE_COLOR, which makes vLLM colour its log lines even
    into a file."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", VLLM_LOGGING_COLOR="0", **(extra or {}))
    env.pop("FORCE_COLOR", None)
    return env


@dataclass
class Group:
    """A started process group and the watchdog bound to this process's life."""

    proc: subprocess.Popen[bytes]
    watchdog: subprocess.Popen[bytes]
    started: float
    mark: Path | None = None  # a standby's import interval, once written (``mark_imported``)

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def reap(self, grace_s: float = 10.0) -> int:
        """Kill what is left of the group, wait for the leader and stop the watchdog;
        returns how many processes were still alive."""
        leftovers = kill_group(self.pgid, grace_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:  # the leader survived its group's SIGKILL: should not happen
            self.proc.kill()
            self.proc.wait()
        self.watchdog.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.watchdog.wait(timeout=5)
        _LIVE.pop(self.pgid, None)
        return leftovers


def start_group(cmd: list[str], log: Path | int, env: dict[str, str] | None = None,
                stdin: int | None = subprocess.DEVNULL) -> Group:
    """Start ``cmd`` as the leader of a new session (and process group) with its
    output in ``log``, plus a watchdog that kills the group if this process dies."""
    out = open(log, "ab") if isinstance(log, Path) else log
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=stdin, env=plain_env(env),
                                start_new_session=True)
        _LIVE[proc.pid] = " ".join(cmd[:6])
        # A session of its own, so a Ctrl-C in the terminal does not end it first.
        watchdog = subprocess.Popen([sys.executable, "-m", "slmstudy.engine.watchdog", str(proc.pid), str(os.getpid())],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out,
                                    start_new_session=True)
    finally:
        if isinstance(log, Path):
            out.close()
    return Group(proc, watchdog, time.monotonic())


@dataclass
class Finished:
    returncode: int
    error: str | None  # why we stopped it (timeout, a check), None if it ended by itself
    leftovers: int  # processes of its group still alive when it ended, then killed
    seconds: float


_STANDBY_LINE = "[slmstudy] vLLM imported in {s:.1f} s by this process while it stood by for this {what}"
_STANDBY_RE = re.compile(r"\[slmstudy\] vLLM imported in ([0-9.]+) s by this process while it stood by")


def output_to(path: Path | str) -> None:
    """From now on this process's stdout and stderr (file descriptors 1 and 2: its
    loggers and the processes it starts too) append to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def receive_standby(log_for: Callable[[list[str]], Path], imported_s: float, what: str
                    ) -> tuple[list[str], float] | None:
    """The standby's side of ``run_logged(..., standby=...)``: wait for the one line
    (a JSON list) that sends this process to work, from then on write stdout and
    stderr to ``log_for(line)``, and say there how long the import beforehand took
    (``imported_s`` is its wall time: less any time the executor held it stopped).
    Returns the line and that import time; None when stdin is closed without a line
    (the job was not needed)."""
    imported_s = mark_imported(imported_s)
    line = sys.stdin.readline()
    if not line.strip():
        return None
    args = json.loads(line)
    output_to(log_for(args))
    print(_STANDBY_LINE.format(s=imported_s, what=what), flush=True)
    return args, imported_s


# Where a standby says, the moment its import ends, when the import ran (wall clock):
# the executor reads it to keep that import out of the job running beside it.
MARK_ENV = "SLMSTUDY_STANDBY_MARK"


def mark_imported(span_s: float) -> float:
    """In a standby, right after its import (``span_s`` of wall time): write ``{"t0",
    "t1", "held_s"}`` where ``start_standby`` asked, and return the import's own time,
    the span less the seconds the executor held this process stopped (``held_s``,
    which it writes to ``<mark>.held`` before continuing it: ``hold_written``)."""
    path = os.environ.get(MARK_ENV)
    if not path:
        return span_s
    try:
        held = float(Path(path + ".held").read_text())
    except (OSError, ValueError):
        held = 0.0
    now = time.time()
    write_json(Path(path), {"t0": now - span_s, "t1": now, "held_s": held})  # whole or absent: the executor polls it
    return max(0.0, span_s - held)


def hold_written(group: "Group", held_s: float) -> None:
    """Before continuing a standby held stopped for ``held_s``: tell it (``mark_imported``)."""
    if group.mark is not None:
        group.mark.with_name(group.mark.name + ".held").write_text(f"{held_s:.3f}")


def read_mark(group: "Group") -> dict[str, float] | None:
    """The import interval a standby wrote (``mark_imported``), None until it has."""
    if group.mark is None:
        return None
    try:
        return json.loads(group.mark.read_text())
    except (OSError, ValueError):
        return None


def standby_import_s(log: str) -> float | None:
    """How long a standby's import took, from the line ``receive_standby`` wrote."""
    m = _STANDBY_RE.search(log)
    return float(m.group(1)) if m else None


def start_standby(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Group:
    """Start ``cmd`` now, waiting on its stdin for the line that sends it to work
    (``run_logged(..., standby=..., go=...)``); closing stdin without one ends it.
    Its import interval will be in ``group.mark`` (``mark_imported``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    mark = log.with_name(log.name + ".imported")
    mark.unlink(missing_ok=True)
    mark.with_name(mark.name + ".held").unlink(missing_ok=True)
    group = start_group(cmd, log, {**(env or {}), MARK_ENV: str(mark)}, stdin=subprocess.PIPE)
    group.mark = mark
    return group


def run_logged(cmd: list[str], log_path: Path, timeout_s: float, env: dict[str, str] | None = None,
               check: Callable[[float], str | None] | None = None, poll_s: float = 0.25,
               on_start: Callable[[Group], None] | None = None, standby: Group | None = None,
               go: bytes = b"") -> Finished:
    """Run ``cmd`` with stdout and stderr to ``log_path``; stop it on timeout or when
    ``check(elapsed)`` returns a reason. The group is killed in every case, also on
    KeyboardInterrupt (which is re-raised).

    With ``standby`` (from ``start_standby``, ``cmd`` and ``env`` already given
    there) the process is sent ``go`` (one line) instead of started; it writes to ``log_path``
    itself from then on, and its time limit counts from then."""
    log_path.write_bytes(b"")
    if standby is None:
        group = start_group(cmd, log_path, env)
    else:
        group = standby
        group.started = time.monotonic()
        try:
            assert group.proc.stdin is not None
            group.proc.stdin.write(go)
            group.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # it died while waiting: its exit code tells the caller
    if on_start:
        on_start(group)
    error = None
    try:
        while group.proc.poll() is None:
            elapsed = time.monotonic() - group.started
            if elapsed > timeout_s:
                error = f"TimeoutError: did not finish within {timeout_s:.0f} s"
                break
            if check and (reason := check(elapsed)):
                error = reason
                break
            time.sleep(poll_s)
    finally:
        leftovers = group.reap()
    return Finished(group.proc.returncode, error, leftovers, time.monotonic() - group.started)


def describe_exit(returncode: int) -> str:
    """"exit code 3" or "killed by signal 9 (SIGKILL)"."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by signal {-returncode} ({signal.Signals(-returncode).name})"
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
