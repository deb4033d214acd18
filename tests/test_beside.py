"""The next job's import beside a running job (measure.beside): held the moment the
job measures, continued when it ends, and what ran beside the job recorded. Real
processes stand in for the standby (its import is a sleep): what is tested is the
stopping, continuing and timing, which do not depend on what the process imports."""

from __future__ import annotations

import json
import sys
import time

import psutil
import pytest

from slmstudy.engine import procs
from slmstudy.engine.spec import EngineJob
from slmstudy.measure import beside

# A standby whose "import" is argv[1] seconds of work that advances only while the
# process runs (short sleeps, a stopped stretch not counted: an import's CPU work
# would, but would also depend on how busy this machine's two cores are), then marks
# it and waits for its line, as engine.worker --standby and engine.vllm_cli --standby do.
STANDBY = ("import sys, time\n"
           "from slmstudy.engine import procs\n"
           "t0 = time.time(); done = 0.0\n"
           "while done < float(sys.argv[1]):\n"
           "    t = time.monotonic(); time.sleep(0.01); done += min(time.monotonic() - t, 0.02)\n"
           "procs.receive_standby(lambda a: __import__('pathlib').Path(a[0]), time.time() - t0, 'test')\n")


def _standby(tmp_path, import_s: float) -> procs.Group:
    return procs.start_standby([sys.executable, "-c", STANDBY, str(import_s)], tmp_path / "standby.log")


def _state(group: procs.Group) -> str:
    return psutil.Process(group.pgid).status()


def test_an_import_outlasting_the_start_is_held_while_the_job_measures(tmp_path):
    group = _standby(tmp_path, 2.0)
    ready_at = time.time() + 0.5  # the job's engine is ready half a second in
    guard = beside.ImportGuard(group, lambda: time.time() >= ready_at)
    try:
        time.sleep(1.5)  # the job measures; the import (2 s) would still run
        assert _state(group) == psutil.STATUS_STOPPED
        assert procs.read_mark(group) is None
        time.sleep(1.0)  # held: a running import would have ended by now (2.5 s > 2 s)
        assert procs.read_mark(group) is None
    finally:
        facts = guard.finish()  # the job ends: the standby goes on importing
    assert _state(group) != psutil.STATUS_STOPPED
    # beside the job: from its start until the hold (0.5 s, the poll adds at most 0.05 s)
    assert facts["beside_import_s"] == pytest.approx(0.5, abs=0.15)
    assert facts["beside_import_held_s"] == pytest.approx(2.0, abs=0.15)
    deadline = time.time() + 10
    while procs.read_mark(group) is None and time.time() < deadline:
        time.sleep(0.05)
    mark = procs.read_mark(group)
    # it imported for 2 s of work spread over 0.5 s before the hold and 1.5 s after
    assert mark is not None and mark["t1"] - mark["t0"] == pytest.approx(4.0, abs=0.3)
    assert mark["held_s"] == pytest.approx(facts["beside_import_held_s"], abs=0.01)
    # sent to work, it says how long its import took: the 2 s of work, not the 2 s held
    group.proc.stdin.write(json.dumps([str(tmp_path / "job.log")]).encode() + b"\n")
    group.proc.stdin.close()
    group.proc.wait(timeout=10)
    said = procs.standby_import_s((tmp_path / "job.log").read_text())
    assert said == pytest.approx(2.0, abs=0.35)
    group.reap(grace_s=2)


def test_an_import_that_ends_before_the_job_measures_is_left_alone(tmp_path):
    group = _standby(tmp_path, 0.5)
    ready_at = time.time() + 1.5
    guard = beside.ImportGuard(group, lambda: time.time() >= ready_at)
    time.sleep(2.0)
    facts = guard.finish()
    assert facts["beside_import_held_s"] == 0
    # the mark's end, not the job's: 0.5 s of sleep plus the interpreter's start
    assert 0.5 <= facts["beside_import_s"] < 1.5
    assert _state(group) != psutil.STATUS_STOPPED
    group.proc.stdin.close()
    group.reap(grace_s=2)


def test_a_held_standby_is_reaped_without_waiting_out_the_grace(tmp_path):
    group = _standby(tmp_path, 5.0)
    guard = beside.ImportGuard(group, lambda: True)
    time.sleep(0.3)
    assert _state(group) == psutil.STATUS_STOPPED
    t0 = time.monotonic()
    group.reap(grace_s=8)  # SIGTERM reaches a stopped process only once it is continued
    assert time.monotonic() - t0 < 4
    guard.finish()


def test_the_ready_signal_reads_only_what_this_attempt_writes(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "engine", "t": 1}\n')  # an earlier attempt's record
    job = EngineJob.model_construct()
    ready = beside.ready_signal(job, tmp_path)
    assert not ready()
    events.unlink()  # the runner cleans the folder; the worker starts a new journal
    assert not ready()
    events.write_text('{"type": "config", "t": 2}\n')
    assert not ready()
    with open(events, "a") as fh:
        fh.write('{"type": "phase", "name": "engine_start", "t": 3}\n{"type": "engine", "t": 4}\n')
    assert ready()


def test_prefetching_is_asked_for_by_name(monkeypatch):
    from slmstudy.errors import SlmstudyError
    from slmstudy.measure import executor
    from slmstudy.platform import detect

    monkeypatch.setenv(executor.PREFETCH_ENV, "on")
    assert executor.prefetching() is True
    monkeypatch.setenv(executor.PREFETCH_ENV, " OFF ")
    assert executor.prefetching() is False
    monkeypatch.setenv(executor.PREFETCH_ENV, "auto")
    assert executor.prefetching() is (detect().engine_kind == "cuda")
    monkeypatch.setenv(executor.PREFETCH_ENV, "sometimes")
    with pytest.raises(SlmstudyError, match="SLMSTUDY_PREFETCH='sometimes': one of on, off, auto"):
        executor.prefetching()
