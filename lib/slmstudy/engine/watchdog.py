"""Kills a process group when the process that started it dies.

``finally`` blocks and ``atexit`` cover a normal exit and an exception, but not a
measuring process killed outright (SIGKILL, a notebook kernel that dies, the OOM
killer, ``timeout``): the engine runs in a session of its own, so nothing else
would stop it, and on a GPU it would keep holding the device's memory while the
next run starts. This small process, started beside every engine, bench-latency
process and server, waits for its parent to go away and then kills the group.

Run as ``python -m slmstudy.engine.watchdog PGID PARENT_PID``; it exits by itself
once the group is empty, and is terminated when the group is reaped normally.
The parent's pid is passed rather than read at start, so a parent that dies while
the watchdog is still starting is noticed too.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from . import procs

POLL_S = 0.5


def watch(pgid: int, parent: int, poll_s: float = POLL_S) -> int:
    # Ctrl-C in a terminal reaches the whole foreground group; the watchdog has
    # a session of its own, but ignore it anyway: it must outlive its parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        if os.getppid() != parent or not procs.pid_alive(parent):  # orphaned: the measuring process is gone
            procs.kill_group(pgid, grace_s=5.0)
            return 0
        if not procs.group_alive(pgid):  # nobody left in the group
            return 0
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m slmstudy.engine.watchdog PGID PARENT_PID", file=sys.stderr)
        return 2
    return watch(int(argv[0]), int(argv[1]))


if __name__ == "__main__":
    sys.exit(main())
