"""Runs inside the child process of one engine configuration.

``python -m slmstudy.engine.worker SPEC_JSON OUT_DIR`` starts the telemetry
sampler, starts vLLM's async engine, measures every workload point of the job
from the token stream, and journals everything to ``OUT_DIR/events.jsonl`` as it
goes. The runner (parent process) turns the journal into tables.

Why the async engine with streaming: vLLM V1's offline ``LLM.generate`` returns
``RequestOutput.metrics = None``, so time to first token and inter-token gaps
must be taken from the stream, at the moment each token reaches the caller.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .. import catalog, modeldir
from ..telemetry.sampler import Sampler
from . import core_clock, frontend_ab, procs
from .args import EXTENSION, engine_env, engine_kwargs
from .journal import Journal, run_journaled
from ..anatomy import trace as anatomy_trace
from .batches import abba, prompt_ids, run_batch, run_batch_final
from .spec import Agreement, AnatomyCheck, EngineJob, HarnessCheck, OverheadCheck, Point

def point_tag(point: Point, index: int) -> int:
    """Prompts depend on the point's shape and the run's index only, so a point
    measured in a merged job sees the prompts it would see alone."""
    return (int(point.shape_digest(), 16) << 20) + index


async def measure_point(engine: Any, job: EngineJob, idx: int, point: Point, vocab: int, journal: Journal) -> None:
    labels = {"point": point.name, "point_shape": point.shape_digest(), "batch": point.batch,
              "input_len": point.input_len, "output_len": point.output_len}
    seed = job.engine.seed
    for w in range(point.warmup):
        prompts = prompt_ids(seed, point_tag(point, 900_000 + w), point.batch, point.input_len, vocab)
        with journal.phase("warmup", rep=w, **labels):
            await run_batch(engine, prompts, point.output_len, point.temperature, f"w{idx}.{w}")
    for rep in range(point.repetitions):
        prompts = prompt_ids(seed, point_tag(point, rep), point.batch, point.input_len, vocab)
        with journal.phase("run", rep=rep, **labels) as extra:
            t0 = time.time()
            result = await run_batch(engine, prompts, point.output_len, point.temperature, f"r{idx}.{rep}")
            extra["wall_s"] = result["wall_s"]
        journal.write("run", rep=rep, t0=t0, t1=t0 + result["wall_s"], **labels, **result)


async def telemetry_overhead(engine: Any, seed: int, check: OverheadCheck, sampler: Sampler | None, vocab: int,
                             journal: Journal) -> None:
    """Alternate identical runs with the sampler running and stopped (ABBA order,
    so slow drifts cancel) and journal each run's throughput."""
    if sampler is None:
        journal.write("overhead", skipped="telemetry disabled")
        return
    sampler.stop()
    try:
        for pair in range(check.pairs):
            for batch in check.batch_sizes:
                for on in abba(pair, True, False):
                    if on:
                        sampler.start()
                    tag = 7_000_000 + pair * 1000 + batch * 2 + int(on)
                    prompts = prompt_ids(seed, tag, batch, check.input_len, vocab)
                    with journal.phase("overhead", batch=batch, telemetry=on, pair=pair):
                        r = await run_batch(engine, prompts, check.output_len, 0.0, f"o{pair}.{batch}.{int(on)}")
                    if on:
                        sampler.stop()
                    journal.write("overhead", pair=pair, batch=batch, telemetry=on,
                                  wall_s=r["wall_s"], output_tok_s=r["output_tok_s"])
    finally:
        sampler.start()


async def harness_cost(engine: Any, seed: int, check: HarnessCheck, vocab: int, journal: Journal) -> None:
    """Alternate streamed, token-timed runs with final-output-only runs of the same
    batch and prompt lengths (ABBA order, so slow drifts cancel); journal each run,
    with the engine core's own time of its last token (core_clock) and this process's
    CPU time: what the harness costs inside each run, apart from the host's spread."""
    clock = core_clock.CoreClock()
    clocked = clock.attach(engine)
    for pair in range(check.pairs):
        for batch in check.batch_sizes:
            for mode in abba(pair, "stream", "final"):
                # Prompts of the same length but their own tokens: a prefix cache, if
                # enabled, must not favour whichever mode runs second.
                tag = 8_000_000 + pair * 100_000 + batch * 2 + (mode == "final")
                prompts = prompt_ids(seed, tag, batch, check.input_len, vocab)
                run = run_batch if mode == "stream" else run_batch_final
                with journal.phase("harness", batch=batch, mode=mode, pair=pair):
                    t0 = time.time()
                    mark, cpu0, start = clock.mark(), time.process_time(), time.monotonic()
                    r = await run(engine, prompts, check.output_len, 0.0, f"h{pair}.{batch}.{mode}")
                    done, cpu = time.monotonic(), time.process_time() - cpu0
                timed = core_clock.delivery(clock.since(mark), start, done) if clocked else {}
                journal.write("harness", pair=pair, batch=batch, mode=mode, t0=t0, wall_s=r["wall_s"],
                              output_tokens=r["output_tokens"], output_tok_s=r["output_tok_s"],
                              short_outputs=r["short_outputs"], done_wall_s=done - start,
                              main_cpu_s=cpu, **timed)


async def step_anatomy(engine: Any, seed: int, check: AnatomyCheck, vocab: int, journal: Journal,
                       out: Path) -> None:
    """For each batch size: arm the worker's profiler for a window of decode steps
    in the middle of the batch, run the batch as a measured run does (every token
    streamed and timed), then journal the window's step starts and device events
    (kernels on a GPU, top-level torch ops on a CPU). The raw trace is deleted once
    read: its events are in the journal. A short window first, not recorded, so
    that the profiler's one-time set-up is not charged to the first batch."""
    first = check.batch_sizes[0]
    await engine.collective_rpc("slmstudy_anatomy_arm", args=(first, 0, 2, str(out / "anatomy_warmup.trace.json")))
    await run_batch(engine, prompt_ids(seed, 9_100_000, first, check.input_len, vocab), 6, check.temperature, "anw")
    await engine.collective_rpc("slmstudy_anatomy_collect", args=(False,))  # discarded unwritten
    for batch in check.batch_sizes:
        path = out / f"anatomy_b{batch}.trace.json"
        prompts = prompt_ids(seed, 9_000_000 + batch, batch, check.input_len, vocab)
        record: dict[str, Any] = {"batch": batch, "input_len": check.input_len, "output_len": check.output_len,
                                  "steps": check.steps, "skip": check.skip}
        try:
            await engine.collective_rpc("slmstudy_anatomy_arm", args=(batch, check.skip, check.steps, str(path)))
            with journal.phase("anatomy", batch=batch):
                r = await run_batch(engine, prompts, check.output_len, check.temperature, f"an{batch}")
            got = (await engine.collective_rpc("slmstudy_anatomy_collect"))[0]
        except Exception as exc:
            # A profile that fails is recorded and the job goes on: the engine's
            # measured runs are already journaled and must not be lost with it.
            if _is_engine_dead(exc):
                raise
            journal.write("anatomy", **record, state="failed", error=f"{type(exc).__name__}: {exc}")
            continue
        record.update(state=got.get("state"), error=got.get("error"), batch_wall_s=r["wall_s"],
                      batch_tpot_s=float(np.nanmean([q["tpot_s"] for q in r["requests"]])),
                      **{k: got.get(k) for k in ("unprofiled_steps", "unprofiled_step_us", "unprofiled_step_us_median")})
        if got.get("trace_path"):
            try:
                window, events = anatomy_trace.device_events(anatomy_trace.load(Path(got["trace_path"])))
                record.update(device=window.device, window_us=window.wall_us, window_steps=window.steps,
                              step_starts_us=[t - window.start_us for t in window.step_starts_us],
                              events=events.to_dict(orient="list"))
            except ValueError as exc:
                record.update(state="interrupted", error=f"trace: {exc}")
            finally:
                Path(got["trace_path"]).unlink(missing_ok=True)
        journal.write("anatomy", **record)


async def generate_agreement(engine: Any, agreement: Agreement, journal: Journal) -> None:
    """Greedy (temperature 0) answers to fixed text prompts, for comparing precisions.
    Needs a tokenizer: the run's pretrained weights bring theirs."""
    from vllm import SamplingParams

    sp = SamplingParams(max_tokens=agreement.max_tokens, temperature=0.0)

    async def one(i: int, prompt: str) -> None:
        final = None
        async for out in engine.generate(prompt, sp, request_id=f"agree-{i}-{uuid.uuid4().hex[:6]}"):
            final = out
        completion = final.outputs[0] if final is not None else None
        journal.write("agreement", index=i, prompt=prompt,
                      token_ids=list(completion.token_ids) if completion else [],
                      text=completion.text if completion else "")

    with journal.phase("agreement"):
        await asyncio.gather(*(one(i, p) for i, p in enumerate(agreement.prompts)))


def _is_engine_dead(exc: BaseException) -> bool:
    return type(exc).__name__ in {"EngineDeadError", "EngineGenerateError"}


async def _engine_report(engine: Any) -> dict[str, Any]:
    try:
        reports = await engine.collective_rpc("slmstudy_report")
        return reports[0] if reports else {}
    except Exception as exc:  # the report is a bonus; never fail a run for it
        return {"report_error": f"{type(exc).__name__}: {exc}"}


async def run(job: EngineJob, out: Path, journal: Journal, imported_s: float | None = None) -> None:
    """Measure ``job`` into ``out``; ``imported_s``: vLLM was imported before the job
    was handed to this process (a standby), taking that long."""
    spec = job.engine
    source = modeldir.prepare(spec.model, spec.precision, spec.weights, spec.weights_path)
    kwargs = engine_kwargs(source, spec.precision, spec.engine, spec.seed)
    kwargs["worker_extension_cls"] = EXTENSION
    kwargs["disable_log_stats"] = True  # periodic stat logging is work the benchmark should not pay for
    vocab = catalog.model(spec.model).hf_config()["vocab_size"]
    # Read by vLLM when the engine is built (vllm.envs is lazy), and inherited by the
    # engine-core process it spawns: so set here, after a standby's import, is in time.
    env = engine_env(spec.precision, spec.engine)
    os.environ.update(env)
    journal.write("config", key=job.key, source=source.description, weights=source.weights,
                  engine_kwargs=kwargs, engine_env=env, pid=os.getpid())

    sampler = Sampler.from_options(spec.telemetry, out / "telemetry.jsonl", root_pid=os.getpid(),
                                   gpus=spec.engine.tensor_parallel_size)
    if sampler is not None:
        journal.write("telemetry", **sampler.start())
        if idle := sampler.idle_baseline(spec.telemetry.idle_baseline_s):
            journal.write("phase", name="idle_baseline", t0=idle[0], t1=idle[1], ok=True,
                          state="before the engine started")
    else:
        journal.write("telemetry", backend="none", fallback_reason="disabled in parameters")

    try:
        with journal.phase("engine_start") as extra:
            import_s = import_vllm()  # ~0 when a standby imported it already
            import vllm
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM

            extra["import_s"] = import_s if imported_s is None else imported_s
            extra["import_prefetched"] = imported_s is not None
            t0 = time.perf_counter()
            engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
            start_s = time.perf_counter() - t0
        # As vLLM's own server does after start-up (vllm.utils.gc_utils.freeze_gc_heap):
        # move the engine's long-lived objects out of the collector's way, so a
        # full collection during a measured run does not stall the token stream.
        gc.collect()
        gc.freeze()
        cache = engine.vllm_config.cache_config
        blocks = cache.num_gpu_blocks
        journal.write(
            "engine",
            vllm_version=vllm.__version__,
            start_s=start_s,
            import_s=extra["import_s"],
            import_prefetched=extra["import_prefetched"],
            kv_blocks=blocks,
            block_size=cache.block_size,
            kv_capacity_tokens=(blocks * cache.block_size) if blocks else None,
            report=await _engine_report(engine),
        )
        try:
            for idx, point in enumerate(job.points):
                try:
                    await measure_point(engine, job, idx, point, vocab, journal)
                except Exception as exc:
                    if _is_engine_dead(exc):
                        raise
                    journal.write("point_error", point=point.name, batch=point.batch,
                                  error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            if job.agreement:
                await generate_agreement(engine, job.agreement, journal)
            if job.harness_check:
                await harness_cost(engine, spec.seed, job.harness_check, vocab, journal)
            if job.frontend_check:
                await frontend_ab.frontend_cost(engine, kwargs, spec.seed, job.frontend_check, vocab, journal)
            if job.anatomy:
                await step_anatomy(engine, spec.seed, job.anatomy, vocab, journal, out)
            if job.overhead_check:
                await telemetry_overhead(engine, spec.seed, job.overhead_check, sampler, vocab, journal)
            journal.write("engine_after", report=await _engine_report(engine))
        finally:
            with journal.phase("shutdown"):
                engine.shutdown()
    finally:
        if sampler:
            sampler.stop()


def import_vllm() -> float:
    """Import what an engine job needs of vLLM; how long it took (seconds)."""
    t0 = time.perf_counter()
    import vllm  # noqa: F401
    from vllm.engine.arg_utils import AsyncEngineArgs  # noqa: F401
    from vllm.v1.engine.async_llm import AsyncLLM  # noqa: F401

    return time.perf_counter() - t0


def standby() -> tuple[list[str], float] | None:
    """Import vLLM now, then wait for the job: one line on stdin, ``["SPEC_JSON",
    "OUT_DIR"]``, after which this process writes to ``OUT_DIR/engine.log``.

    Why: importing vLLM takes 16-22 s per engine process on the lent H100, a tenth
    of the study; a standby for the next job imports while the current one starts
    its engine, and waits (blocked, no CPU) while it measures. Returns None when
    the study closes stdin without a job (the next job was not needed)."""
    # its own import time comes back: a hold beside the job before left out (measure.beside)
    return procs.receive_standby(lambda a: Path(a[1]) / "engine.log", import_vllm(), "job")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    imported_s = None
    if argv == ["--standby"]:
        handed = standby()
        if handed is None:
            return 0
        argv, imported_s = handed
    if len(argv) != 2:
        print("usage: python -m slmstudy.engine.worker SPEC_JSON OUT_DIR  |  --standby", file=sys.stderr)
        return 2
    job = EngineJob.load(Path(argv[0]))
    out = Path(argv[1])
    journal = Journal(out / "events.jsonl")
    return run_journaled(journal, lambda: asyncio.run(run(job, out, journal, imported_s)))


if __name__ == "__main__":
    # vLLM starts its engine core with the spawn method: this guard keeps the
    # child from re-running the measurement when it imports this module.
    sys.exit(main())
