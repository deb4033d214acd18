"""The sampling process, and the handle the measuring process holds on it.

Sampling runs in its own process, not a thread of the engine's process: it never
competes for the engine front-end's GIL, and a stuck NVML call cannot stall the
measured work. It writes one JSON object per sample (the set of fields can grow
after the first GPM sample), flushing about once a second so that a crash loses
at most a second of trace.

Run as ``python -m slmstudy.telemetry.sampler --out trace.jsonl ...``; it prints one
``ready <json>`` line once the first sample is taken, then samples until SIGTERM
or until its parent dies.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from ..params import DEFAULT_INTERVAL_MS, TelemetryOptions
from .cpu_reader import CpuReader


def _open_reader(gpu_index: int, root_pid: int, gpus: int = 1) -> tuple[Any, str, str | None]:
    """The GPU reader (of ``gpus`` GPUs from ``gpu_index`` on, read as one) with the
    host's CPU added to each sample, or the CPU reader alone."""
    if os.environ.get("SLMSTUDY_FORCE_CPU") != "1":
        try:
            from .nvml_reader import MultiNvmlReader, NvmlReader

            gpu = NvmlReader(gpu_index) if gpus == 1 else MultiNvmlReader(gpu_index, gpus)
            return WithHost(gpu, CpuReader(root_pid)), "nvml", None
        except Exception as exc:  # no driver / library / device: CPU fallback
            reason = f"NVML unavailable ({type(exc).__name__}: {exc})"
    else:
        reason = "SLMSTUDY_FORCE_CPU=1"
    return CpuReader(root_pid), "cpu", reason


class WithHost:
    """A GPU reader whose samples also carry the host's CPU columns (``host_sample``)."""

    def __init__(self, gpu: Any, host: CpuReader):
        self.gpu, self.host = gpu, host

    def device_info(self) -> dict[str, Any]:
        return self.gpu.device_info()

    def sample(self, pids: set[int] | None = None) -> dict[str, Any]:
        row = self.gpu.sample(pids)
        try:
            row.update(self.host.host_sample(pids))
        except Exception as exc:  # the host columns are extra: never lose the GPU sample
            row["host_sample_error"] = f"{type(exc).__name__}: {exc}"
        return row

    def close(self) -> None:
        self.gpu.close()


def _run(out: Path, interval_s: float, gpu_index: int, root_pid: int, metrics_url: str | None = None,
         metrics_out: Path | None = None, gpus: int = 1) -> int:
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    parent = os.getppid()
    reader, backend, fallback_reason = _open_reader(gpu_index, root_pid, gpus)
    scraper = None
    if metrics_url and metrics_out:
        from .server_metrics import Scraper

        scraper = Scraper(metrics_url, metrics_out, interval_s)
        scraper.start()
    track = {root_pid}
    tree_refresh = 0.0
    with open(out, "a", buffering=1 << 16) as fh:
        first = True
        last_flush = time.monotonic()
        next_tick = time.monotonic()
        while not stop:
            now = time.monotonic()
            if now - tree_refresh > 1.0:  # the engine spawns children: refresh the pid set
                try:
                    root = psutil.Process(root_pid)
                    track = {root_pid, *(c.pid for c in root.children(recursive=True))}
                except psutil.NoSuchProcess:
                    track = {root_pid}
                tree_refresh = now
            try:
                row = reader.sample(track)
            except Exception as exc:  # a failing read must not end the trace
                row = {"t": time.time(), "sample_error": f"{type(exc).__name__}: {exc}"}
            fh.write(json.dumps(row) + "\n")
            if first:
                fh.flush()
                info = {"backend": backend, "fallback_reason": fallback_reason, **reader.device_info()}
                print("ready " + json.dumps(info), flush=True)
                first = False
            if now - last_flush > 1.0:
                fh.flush()
                last_flush = now
            if os.getppid() != parent:  # orphaned: the measuring process is gone
                break
            next_tick += interval_s
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.monotonic()  # fell behind: do not burst to catch up
    if scraper:
        scraper.stop()
    reader.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slmstudy.telemetry.sampler")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--interval-ms", type=float, default=float(DEFAULT_INTERVAL_MS))
    ap.add_argument("--gpu-index", type=int, default=0)
    ap.add_argument("--gpus", type=int, default=1, help="GPUs from --gpu-index on, read as one engine's")
    ap.add_argument("--root-pid", type=int, default=None)
    ap.add_argument("--metrics-url", default=None, help="also read this Prometheus page each interval")
    ap.add_argument("--metrics-out", type=Path, default=None)
    a = ap.parse_args(argv)
    return _run(a.out, a.interval_ms / 1000, a.gpu_index, a.root_pid or os.getppid(), a.metrics_url, a.metrics_out,
                a.gpus)


class Sampler:
    """Starts and stops the sampling process; never raises into the measured work."""

    def __init__(self, out: Path, interval_ms: float = DEFAULT_INTERVAL_MS, gpu_index: int = 0,
                 root_pid: int | None = None, metrics_url: str | None = None, gpus: int = 1):
        self.out = Path(out)
        # A server's /metrics page, read in the sampler's process into metrics.jsonl beside the trace.
        self.metrics_url = metrics_url
        self.interval_ms = interval_ms
        self.gpu_index = gpu_index
        self.gpus = gpus  # a tensor-parallel engine's GPUs, read as one (telemetry.gpus)
        self.root_pid = root_pid or os.getpid()
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.error: str | None = None

    @classmethod
    def from_options(cls, options: TelemetryOptions, out: Path, root_pid: int,
                     metrics_url: str | None = None, gpus: int = 1) -> "Sampler | None":
        """A sampler as a job's telemetry options ask for (``gpus``: the engine's
        tensor-parallel size); None when disabled."""
        if not options.enabled:
            return None
        return cls(out, options.interval_ms, options.gpu_index, root_pid=root_pid, metrics_url=metrics_url,
                   gpus=gpus)

    @property
    def metrics_out(self) -> Path:
        return self.out.parent / "metrics.jsonl"

    def start(self, timeout_s: float = 30.0) -> dict[str, Any]:
        cmd = [
            sys.executable, "-m", "slmstudy.telemetry.sampler",
            "--out", str(self.out), "--interval-ms", str(self.interval_ms),
            "--gpu-index", str(self.gpu_index), "--gpus", str(self.gpus), "--root-pid", str(self.root_pid),
        ]
        if self.metrics_url:
            cmd += ["--metrics-url", self.metrics_url, "--metrics-out", str(self.metrics_out)]
        try:
            # stderr to a file: a pipe nobody reads could fill up and block the sampler.
            self._err = self.out.with_suffix(".stderr")
            with open(self._err, "w") as err:
                self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
            line = _readline(self.proc, timeout_s)
            if not line.startswith("ready "):
                raise RuntimeError(f"sampler did not start: {line.strip() or self._stderr()}")
            self.info = json.loads(line[len("ready "):])
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.stop()
            self.info = {"backend": "none", "fallback_reason": self.error}
        return self.info

    def idle_baseline(self, seconds: float) -> tuple[float, float] | None:
        """Wait ``seconds`` with nothing to do but sample, when the sampler reads a
        GPU (a CPU has no power reading to subtract): the window, or None."""
        if seconds <= 0 or self.info.get("backend") != "nvml":
            return None
        t0 = time.time()
        time.sleep(seconds)
        return t0, time.time()

    def _stderr(self) -> str:
        try:
            return self._err.read_text()[-2000:] or "(no output)"
        except (AttributeError, OSError):
            return "(no output)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> "Sampler":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _readline(proc: subprocess.Popen[str], timeout_s: float) -> str:
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout_s):
        raise TimeoutError(f"sampler gave no ready line within {timeout_s:.0f} s")
    return proc.stdout.readline()


if __name__ == "__main__":
    sys.exit(main())
