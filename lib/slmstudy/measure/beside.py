"""What ran beside a job: the next job's vLLM import, held out of the job's measurement.

The executor starts the next job's standby when a job starts, so that its import
(13-15 s on the lent H100) overlaps this job's engine start instead of adding to the
study. A warm start can be shorter than the import (6690548's sitting: DeepSeek's
bf16 engine was ready 13.5 s into its job, the fp32 standby's import took 13.3 s):
then the import would run on into the job's measured repetitions. ``ImportGuard``
watches for the moment the job's engine reports ready and, if the import has not
ended by then, stops the standby (SIGSTOP: no CPU, its memory kept) until the job
ends, when it continues (SIGCONT) and the next job waits for it as it would have.

What the job records (its timing row): ``beside_import_s``, the seconds the other
process imported vLLM while this job ran (inside its start: the engine start, and
for an engine job the idle-power baseline before it), and ``beside_import_held_s``,
how long that process was held stopped because this job began measuring first.
01's start times are measurements, so their rows say how much of each start had
the import beside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..engine import procs
from ..engine.spec import BenchLatencyJob, EngineJob
from ..jobs import Job
from ..serving.spec import ServeJob


class _Tail:
    """Whether a growing text file has shown one of ``needles`` since this was made
    (what an earlier attempt left in it does not count; a file emptied again is read
    from its start)."""

    def __init__(self, path: Path, needles: tuple[str, ...]):
        self.path, self.needles, self.rest = path, needles, ""
        self.offset = path.stat().st_size if path.exists() else 0

    def __call__(self) -> bool:
        try:
            if os.path.getsize(self.path) < self.offset:
                self.offset, self.rest = 0, ""
            with open(self.path, errors="replace") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
                self.offset = fh.tell()
        except OSError:
            return False
        text = self.rest + chunk
        keep = max(len(n) for n in self.needles)
        self.rest = text[-keep:]
        return any(n in text for n in self.needles)


def ready_signal(job: Job, out: Path) -> Callable[[], bool] | None:
    """A test of whether ``job`` (writing into ``out``) has begun measuring: its
    engine's start-up record (our worker), its server's (a serve job), vLLM's
    warm-up line (bench latency). None for a kind that has no standby beside it."""
    if isinstance(job, EngineJob):
        return _Tail(out / "events.jsonl", ('{"type": "engine",',))
    if isinstance(job, ServeJob):
        return _Tail(out / "events.jsonl", ('{"type": "server",',))
    if isinstance(job, BenchLatencyJob):
        # latency: "Warming up..." then its progress bar; throughput: "Warming up with N
        # requests..." (vLLM 0.32) or its generate's bars. Not just "Warming up": the CPU
        # engine's start logs "Warming up model for the compilation..."
        return _Tail(out / "bench.log", ("Warming up...", "Warmup iterations", "Warming up with ",
                                         "Adding requests", "Processed prompts"))
    return None


class ImportGuard:
    """Watch a standby's import beside a running job; hold it once the job measures."""

    def __init__(self, standby: procs.Group, ready: Callable[[], bool], poll_s: float = 0.05):
        self.standby, self.ready, self.poll_s = standby, ready, poll_s
        self.started = time.time()
        self.held_at: float | None = None
        self.mark: dict[str, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="import-guard", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            if (mark := procs.read_mark(self.standby)) is not None:
                self.mark = mark
                return
            if self.standby.proc.poll() is not None:
                return  # it died while importing: its job will say why
            if self.ready():
                # measuring begins; a mark written meanwhile means the import is over
                if (mark := procs.read_mark(self.standby)) is not None:
                    self.mark = mark
                    return
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.standby.pgid, signal.SIGSTOP)
                    self.held_at = time.time()
                return

    def finish(self) -> dict[str, float]:
        """The job has ended: continue a held standby; what ran beside the job."""
        self._stop.set()
        self._thread.join()
        end = time.time()
        held = 0.0
        if self.held_at is not None:
            # the import may have ended between the last look and the stop: then the stop
            # held a process already waiting for its job, and nothing was held back
            self.mark = procs.read_mark(self.standby)
            if self.mark is None or self.mark["t1"] > self.held_at:
                self.mark, held = None, end - self.held_at
                procs.hold_written(self.standby, held)  # its import time is then its own, the hold left out
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.standby.pgid, signal.SIGCONT)
        if self.mark is not None:
            stop = self.mark["t1"]
        elif self.held_at is not None:
            stop = self.held_at
        else:
            stop = end  # still importing when the job ended (or it died)
        return {"beside_import_s": max(0.0, min(stop, end) - self.started), "beside_import_held_s": held}
