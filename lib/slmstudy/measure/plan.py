"""The study plan: every notebook's jobs merged and put in order. Pure functions.

Merging: engine jobs with the same engine (digest), start kind and round become
one job whose points are the union of theirs; points of the same shape (batch,
lengths, temperature) are one measurement, with the most repetitions and
warm-ups any notebook asked for. Other jobs are deduplicated.

Order:
1. probes of the machine (hardware, telemetry overhead), while nothing else runs;
2. per model, in order of first appearance: its cold starts first (they empty the
   model's compile cache), then every other engine job of round 1, each directly
   after its ``vllm bench latency`` runs when it has some (largest batch first);
3. later cross-check rounds, models interleaved (so rounds sample the host at
   different times);
4. servers, which reuse the compile caches the engines left;
5. GGUF files, then llama.cpp on the CPU cores (each file built before the first
   job that runs it, and no GPU work beside them: on a GPU host they run last).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..edge.spec import EdgeJob, GgufFileJob
from ..engine.spec import BenchLatencyJob, EngineJob, Point
from ..jobs import HardwareProbeJob, Job, OverheadProbeJob
from ..serving.spec import ServeJob


def merge_points(points: Iterable[Point]) -> tuple[Point, ...]:
    """One point per shape, as thorough as the most demanding request; the points
    that must come first on a fresh engine lead."""
    by_shape: dict[tuple, Point] = {}
    for p in points:
        have = by_shape.get(p.shape)
        if have is None:
            by_shape[p.shape] = p
        else:
            by_shape[p.shape] = have.model_copy(update={
                "repetitions": max(have.repetitions, p.repetitions), "warmup": max(have.warmup, p.warmup),
                "first": have.first or p.first})
    merged = list(by_shape.values())
    return tuple([p for p in merged if p.first] + [p for p in merged if not p.first])


def _merge_engine(group: list[EngineJob]) -> list[EngineJob]:
    """Jobs of one merge key as few engine processes as their checks allow
    (two different overhead or harness checks or agreement sets cannot share an engine)."""
    out: list[EngineJob] = []
    for job in group:
        for i, have in enumerate(out):
            if all(getattr(job, c) is None or getattr(have, c) in (None, getattr(job, c)) for c in EngineJob.CHECKS):
                out[i] = have.model_copy(update={
                    "points": merge_points([*have.points, *job.points]),
                    **{c: getattr(have, c) or getattr(job, c) for c in EngineJob.CHECKS},
                    "timeout_s": max(have.timeout_s, job.timeout_s)})
                break
        else:
            out.append(job.model_copy(update={"points": merge_points(job.points)}))
    return out


def merge(jobs: Iterable[Job]) -> list[Job]:
    engines: dict[tuple, list[EngineJob]] = {}
    others: dict[str, Job] = {}
    order: list[tuple[str, object]] = []
    for job in jobs:
        if isinstance(job, EngineJob):
            if job.merge_key not in engines:
                engines[job.merge_key] = []
                order.append(("engine", job.merge_key))
            engines[job.merge_key].append(job)
        elif job.digest() not in others:
            others[job.digest()] = job
            order.append(("other", job.digest()))
    out: list[Job] = []
    for kind, key in order:
        out += _merge_engine(engines[key]) if kind == "engine" else [others[key]]  # type: ignore[index]
    return out


def order(jobs: list[Job]) -> list[Job]:
    probes = [j for j in jobs if isinstance(j, (HardwareProbeJob, OverheadProbeJob))]
    engines = [j for j in jobs if isinstance(j, EngineJob)]
    benches = [j for j in jobs if isinstance(j, BenchLatencyJob)]
    servers = [j for j in jobs if isinstance(j, ServeJob)]
    files = [j for j in jobs if isinstance(j, GgufFileJob)]
    edges = [j for j in jobs if isinstance(j, EdgeJob)]
    # An engine's bench runs, largest batch first: the engine measures its
    # cross-check points smallest first, so each pair is about as far apart.
    bench_for: dict[tuple, list[BenchLatencyJob]] = {}
    for b in sorted(benches, key=lambda b: -b.point.batch):
        bench_for.setdefault(b.precedes, []).append(b)
    models = list(dict.fromkeys([j.engine.model for j in engines] + [b.engine.model for b in benches]))
    out: list[Job] = list(probes)
    used: set[int] = set()

    def with_bench(job: EngineJob) -> list[Job]:
        mine = [b for b in bench_for.get((job.engine.digest(), job.start, job.round), []) if id(b) not in used]
        used.update(id(b) for b in mine)
        return [*mine, job]

    for model in models:
        mine = [j for j in engines if j.engine.model == model and j.round == 1]
        for job in [j for j in mine if j.start == "cold"] + [j for j in mine if j.start != "cold"]:
            out += with_bench(job)
    for rnd in sorted({j.round for j in engines if j.round > 1}):
        for model in models:
            for job in (j for j in engines if j.engine.model == model and j.round == rnd):
                out += with_bench(job)
    # A bench run whose engine job is not in the plan still runs (before the servers).
    out += [b for b in benches if id(b) not in used]
    return out + servers + files + edges


def build(jobs: Iterable[Job]) -> list[Job]:
    """The plan: merged, then ordered."""
    return order(merge(jobs))
