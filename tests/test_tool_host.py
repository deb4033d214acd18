"""The serving cross-check's tool hosts (``serving.tool_host``, ``external.ToolHost``):
one process imports a tool once and runs it level after level, a level's failure
stays the level's, and a level that overruns is stopped with everything it started."""

from __future__ import annotations

import socket
import threading

import psutil

from slmstudy.serving import guidellm_run
from slmstudy.serving.external import ToolHost
from slmstudy.serving.load import Workload


def test_one_import_many_levels_and_a_failing_level_stays_the_levels(tmp_path):
    host = ToolHost("guidellm", tmp_path / "host.log")
    try:
        first, f1 = host.run(["--help"], tmp_path / "l1.log", 120)
        second, f2 = host.run(["--help"], tmp_path / "l2.log", 120)
        bad, f3 = host.run(["no-such-command"], tmp_path / "l3.log", 120)
        after, f4 = host.run(["--help"], tmp_path / "l4.log", 120)
    finally:
        host.close()
    assert (first.returncode, second.returncode, after.returncode) == (0, 0, 0)
    assert f1["host_pid"] == f2["host_pid"] == f3["host_pid"] == f4["host_pid"]
    assert f1["host_import_s"] > 0 and f2["host_import_s"] is None
    assert [f["host_level"] for f in (f1, f2, f3, f4)] == [1, 2, 3, 4]
    # each level's output in its own log
    assert "Usage" in (tmp_path / "l2.log").read_text() and "no-such-command" in (tmp_path / "l3.log").read_text()
    assert bad.returncode != 0 and bad.error is None
    assert not psutil.pid_exists(f1["host_pid"])
    # each finished level says what CPU it used in the host, the failing one too (a `--help`
    # may take less than the clock's 10 ms tick: the accounting is checked below)
    assert all(f["client_cpu_s"] is not None and 0 <= f["client_cpu_s"] < 60 for f in (f1, f2, f3, f4))


def test_a_levels_cpu_counts_the_processes_it_started_and_waited_for():
    """GuideLLM runs its requests in worker processes: a level's CPU must include them.
    A child that spins for 0.5 s of CPU is counted once it is waited for; this process's
    own 0.3 s spin is counted too."""
    import subprocess
    import sys
    import time

    from slmstudy.serving.tool_host import cpu_seconds

    before = cpu_seconds()
    subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\n"
                    "while time.process_time() - t < 0.5: pass"], check=True)
    t = time.process_time()
    while time.process_time() - t < 0.3:
        pass
    used = cpu_seconds() - before
    assert 0.8 <= used < 2.5, used  # the child's interpreter start adds a little, never less than 0.8


def test_a_level_past_its_limit_is_stopped_and_the_next_gets_a_new_host(tmp_path):
    """GuideLLM against a server that accepts connections and never answers: the level
    is stopped at its limit, the host's whole group killed; the next level works in a
    fresh host."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    w = Workload(api="completions", input_tokens=8, output_tokens=4, temperature=0.0, seed=0, exact_counts=False)
    host = ToolHost("guidellm", tmp_path / "host.log")
    try:
        line = guidellm_run.run(f"http://127.0.0.1:{silent.getsockname()[1]}/v1", "m", w, 1, 2, 0, tmp_path,
                                "guidellm_hang", 10, host)
        later, facts = host.run(["--help"], tmp_path / "later.log", 120)
    finally:
        host.close()
        stop.set()
        silent.close()
        for c in held:
            c.close()
    assert line["status"] == "failed" and line["error"].startswith("TimeoutError"), line
    assert not psutil.pid_exists(line["host_pid"])
    assert later.returncode == 0 and facts["host_pid"] != line["host_pid"] and facts["host_level"] == 1
