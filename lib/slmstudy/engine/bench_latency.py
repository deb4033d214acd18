"""Cross-check against vLLM's own ``vllm bench latency``, run with the very same
engine arguments and workload, in a process group of its own.

``bench latency`` times whole ``LLM.generate`` calls of one batch (prefill plus
all decode steps), so its tokens/s is ``batch * output_len / latency``: the same
definition as our per-repetition ``output_tok_s``.

The telemetry sampler runs beside it as beside our engine, so both sides of the
comparison say how busy the GPU and the host were and how much CPU time the
hypervisor took away (steal) while they were measured. This module leaves raw
files only (``bench.json``, ``bench.log``, ``telemetry.jsonl``); the results
layer joins the trace to the measured window.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .. import modeldir
from ..atomic import write_json
from ..telemetry.sampler import Sampler
from . import caches, core_watch, procs, vllm_log
from .args import cli_flags, core_start_env, core_start_method, engine_env, engine_kwargs
from .runner import RunResult, clean
from .spec import BenchLatencyJob

RESULT = "bench.json"


def command(job: BenchLatencyJob, out_json: Path, tokenizer: str | None = None) -> list[str]:
    spec, point = job.engine, job.point
    source = modeldir.prepare(spec.model, spec.precision, spec.weights, spec.weights_path)
    kwargs = engine_kwargs(source, spec.precision, spec.engine, spec.seed)
    if job.tool == "throughput":
        return _throughput_command(job, out_json, kwargs, tokenizer)
    cmd = [
        sys.executable, "-m", "slmstudy.engine.vllm_cli", "bench", "latency",
        "--model", source.model,
        "--input-len", str(point.input_len), "--output-len", str(point.output_len),
        "--batch-size", str(point.batch),
        "--num-iters-warmup", str(job.warmup), "--num-iters", str(job.iters),
        "--output-json", str(out_json),
        *cli_flags(kwargs),
    ]
    if kwargs.get("skip_tokenizer_init"):
        cmd.append("--disable-detokenize")  # no tokenizer with dummy weights
    return cmd


def _throughput_command(job: BenchLatencyJob, out_json: Path, kwargs: dict[str, Any],
                        tokenizer: str | None) -> list[str]:
    """``vllm bench throughput``: ``batch`` random prompts of exactly ``input_len``
    tokens (range ratio 0), ``output_len`` each with ignore_eos (its own setting), all
    handed to one ``generate``. Its random dataset samples token IDs and decodes them
    to text, so it needs a tokenizer: with dummy weights the generated one
    (``tokenizer``), which the engine then also uses (detokenising stays off)."""
    point = job.point
    kw = dict(kwargs)
    if tokenizer:
        kw.update(tokenizer=tokenizer, skip_tokenizer_init=False)
    return [
        sys.executable, "-m", "slmstudy.engine.vllm_cli", "bench", "throughput",
        "--model", kw.pop("model"),
        "--dataset-name", "random", "--random-input-len", str(point.input_len),
        "--random-output-len", str(point.output_len), "--random-range-ratio", "0",
        "--num-prompts", str(point.batch), "--disable-detokenize",
        "--output-json", str(out_json),
        *cli_flags(kw),
    ]


def env(job: BenchLatencyJob, cache_root: Path) -> dict[str, str]:
    """The bench process's environment (its standby's too): the model's caches, the
    precision's engine settings, and its engine core forked as our engines' are
    (``core_start_env``)."""
    return {**core_start_env(), **caches.env(cache_root), **engine_env(job.engine.precision, job.engine.engine)}


STANDBY = [sys.executable, "-m", "slmstudy.engine.vllm_cli", "--standby", "bench"]


def start_standby(job: BenchLatencyJob, cache_root: Path, log: Path) -> procs.Group:
    """A process importing ``vllm bench``'s modules now, for ``run(job, ..., standby=)`` later."""
    return procs.start_standby(STANDBY, log, env=env(job, cache_root))


def run(job: BenchLatencyJob, out: Path, cache_root: Path, tokenizer: str | None = None,
        standby: procs.Group | None = None) -> RunResult:
    """Run it into ``out``; ``bench.json`` holds vLLM's numbers, the command and the
    measured window (``window_t0``/``window_t1``, wall clock). ``tokenizer``: for
    ``bench throughput`` with dummy weights, the generated tokenizer's folder.
    ``standby``: from ``start_standby`` for this job, sent the command instead of
    starting a process (vLLM's CLI unchanged, imported beforehand)."""
    clean(out)
    job_json = out / "vllm_bench.json"
    job_json.unlink(missing_ok=True)
    (out / "telemetry.jsonl").unlink(missing_ok=True)
    cmd = command(job, job_json, tokenizer)
    run_env = env(job, cache_root)
    cache_state = caches.prepare(cache_root, cold=False)
    # Rooted at this process: the tree then holds bench latency and its engine core.
    sampler = Sampler.from_options(job.engine.telemetry, out / "telemetry.jsonl", root_pid=os.getpid(),
                                   gpus=job.engine.engine.tensor_parallel_size)
    started = time.time()
    idle = None
    if sampler is not None:
        sampler.start()
        idle = sampler.idle_baseline(job.engine.telemetry.idle_baseline_s)
    try:
        # the standby runs `vllm ARGV`: the arguments after our wrapper's module
        go = json.dumps([cmd[cmd.index("bench"):], str(out / "bench.log")]).encode() + b"\n"
        core = core_watch.CoreWatch(look_s=job.engine.engine.start_timeout_s)
        fin = procs.run_logged(cmd, out / "bench.log", job.timeout_s, env=run_env,
                               standby=standby, go=go, check=core, on_start=core.attach)
    finally:
        if sampler is not None:
            sampler.stop()
    log = (out / "bench.log").read_text(errors="replace")
    result: dict[str, Any] = {"command": " ".join(cmd), "returncode": fin.returncode, "seconds": fin.seconds,
                              "telemetry": sampler is not None, "vllm_import_prefetched": standby is not None,
                              "vllm_import_s": procs.standby_import_s(log) if standby is not None else None,
                              "engine_core_start_method": core_start_method(run_env)}
    if idle:
        result.update(idle_t0=idle[0], idle_t1=idle[1], idle_state=f"before bench {job.tool} started")
    error = cause = None
    if fin.error or fin.returncode != 0 or not job_json.exists():
        error = fin.error or f"vllm bench {job.tool} {procs.describe_exit(fin.returncode)}"
        # an engine core gone is vLLM's to explain first; a time limit is the cause itself
        cause = core_watch.cause(fin.error, log) or fin.error or vllm_log.root_cause(log) \
            or vllm_log.died_process(log) or error
        result["error"] = cause
    else:
        data = json.loads(job_json.read_text())
        if job.tool == "throughput":
            # one generate of the whole batch: its elapsed time is the one "latency"
            data = {"avg_latency": data["elapsed_time"], "latencies": [data["elapsed_time"]],
                    "num_requests": data.get("num_requests"), "total_num_tokens": data.get("total_num_tokens")}
            result["num_requests"], result["total_num_tokens"] = data["num_requests"], data["total_num_tokens"]
        latencies = [float(x) for x in data.get("latencies") or []]
        result.update(avg_latency_s=float(data["avg_latency"]), latencies_s=latencies,
                      percentiles=data.get("percentiles"))
        if job.tool == "latency":
            # The measured iterations ran back to back and the JSON was written as
            # soon as they ended: they cover the sum(latencies) seconds before it.
            # (bench throughput shuts its engine down first, seconds that vary: its
            # window cannot be placed on the clock, so its row has no telemetry.)
            written = job_json.stat().st_mtime
            result.update(window_t0=written - sum(latencies), window_t1=written)
    write_json(out / RESULT, result)
    return RunResult(error=error, root_cause=cause, returncode=fin.returncode,
                     leftover_processes_killed=fin.leftovers, seconds=fin.seconds, started_at=started,
                     finished_at=time.time(), compile_cache=cache_state)
