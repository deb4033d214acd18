"""Kills a server's process group when the process that started it dies.

``atexit`` covers a normal exit and an exception, but not a measuring process
killed outright (SIGKILL, a notebook kernel restarted, the OOM killer): the
server runs in a session of its own, so nothing else would stop it, and on a GPU
it would keep holding the device's memory. This small process, started beside
the server, waits for its parent to go away and then kills the group.

Run as ``python -m slmstudy.serving.watchdog PGID PARENT_PID``; it exits by
itself once the group is empty, and is terminated by ``VllmServer.stop``. The
parent's pid is passed rather than read at start, so a parent that dies while
the watchdog is still starting is noticed too.
"""

from __future__ import annotations

import os
import sys
import time

from ..engine import procs


def watch(pgid: int, parent: int, poll_s: float = 1.0) -> int:
    while True:
        if os.getppid() != parent:  # orphaned: the measuring process is gone
            procs.kill_group(pgid)
            return 0
        try:
            os.killpg(pgid, 0)  # signal 0: is anyone left in the group?
        except ProcessLookupError:
            return 0
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m slmstudy.serving.watchdog PGID PARENT_PID", file=sys.stderr)
        return 2
    return watch(int(argv[0]), int(argv[1]))


if __name__ == "__main__":
    sys.exit(main())
