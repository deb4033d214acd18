"""Which jobs of a plan may run at once on a host's devices, and on which. Pure functions.

A study on a host with several GPUs runs independent configurations at once, one
engine per free device. The plan (``measure.plan``) is cut into *units*, each run
on devices of its own:

* a ``vllm bench latency`` run travels with the engine job it precedes (the
  cross-check compares the two on the same device, one just before the other);
* a unit needs as many devices as its engine's ``tensor_parallel_size``;
* units of one model share its compile cache (a cold start empties it, the next
  start of the same configuration reuses what the previous one compiled), so they
  keep their plan order and never overlap: the cache is the unit's *key*;
* machine probes, GGUF file builds and llama.cpp runs measure or load the host
  itself (its memory bandwidth, its CPU cores, its disk): they run alone, and no
  later unit starts before them.

Devices are handed out first come, first served: a unit that waits for devices
holds back every later unit (no starvation of a tensor-parallel engine by
single-device ones); a unit that waits only for its key lets later units of
other keys pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..edge.spec import EdgeJob, GgufFileJob
from ..engine.spec import BenchLatencyJob, EngineJob
from ..jobs import HardwareProbeJob, Job, OverheadProbeJob
from ..serving.spec import ServeJob

WHOLE_HOST = (HardwareProbeJob, OverheadProbeJob, GgufFileJob, EdgeJob)


@dataclass(frozen=True)
class Unit:
    """Jobs that run one after the other on the same devices."""

    index: int  # the unit's place in the plan
    jobs: tuple[Job, ...]
    devices: int  # how many devices it holds at once (whole-host units: none of their own)
    key: str | None  # units with the same key keep their order and never overlap
    whole_host: bool = False

    @property
    def name(self) -> str:
        return " + ".join(j.key for j in self.jobs)


def devices_of(job: Job) -> int:
    """Devices a job holds: its engine's tensor-parallel size; none for host-wide jobs."""
    if isinstance(job, (EngineJob, BenchLatencyJob, ServeJob)):
        return job.engine.engine.tensor_parallel_size
    return 0


def key_of(job: Job) -> str | None:
    if isinstance(job, (EngineJob, BenchLatencyJob, ServeJob)):
        return f"compile cache of {job.engine.model}"
    return None


def units(plan: Sequence[Job]) -> list[Unit]:
    """The plan cut into units, in its order: each ``vllm bench latency`` job joined
    to the engine job it precedes (the plan puts them directly before it)."""
    out: list[Unit] = []
    held: list[BenchLatencyJob] = []

    def add(jobs: list[Job]) -> None:
        first = jobs[0]
        out.append(Unit(len(out), tuple(jobs), max(devices_of(j) for j in jobs), key_of(first),
                        isinstance(first, WHOLE_HOST)))

    for job in plan:
        if isinstance(job, BenchLatencyJob):
            if held and held[-1].precedes != job.precedes:
                for b in held:  # bench runs whose engine is not next: on their own
                    add([b])
                held = []
            held.append(job)
            continue
        if held and isinstance(job, EngineJob) and held[-1].precedes == job.merge_key:
            add([*held, job])
        else:
            for b in held:
                add([b])
            add([job])
        held = []
    for b in held:
        add([b])
    return out


def startable(pending: Sequence[Unit], running: Sequence[Unit], free: Sequence[int]
              ) -> list[tuple[Unit, tuple[int, ...]]]:
    """The units to start now, in plan order, each with the devices it takes.

    ``pending``: units not started, in plan order; ``running``: units holding their
    devices; ``free``: the ids of the devices nobody holds."""
    ready: list[tuple[Unit, tuple[int, ...]]] = []
    left = sorted(free)
    keys = {u.key for u in running if u.key is not None}
    for unit in pending:
        if unit.whole_host:
            if not running and not ready:
                ready.append((unit, ()))
            break  # nothing later starts before a host-wide unit, nor beside it
        if unit.key is not None and unit.key in keys:
            continue  # waits for an earlier unit of its key; later keys may pass
        if unit.devices > len(left):
            break  # first come, first served: later units do not take the devices it waits for
        ready.append((unit, tuple(left[:unit.devices])))
        left = left[unit.devices:]
        if unit.key is not None:
            keys.add(unit.key)
    return ready


def simulate(plan_units: Sequence[Unit], devices: Sequence[int], seconds: dict[str, float]
             ) -> list[tuple[str, float, float, tuple[int, ...]]]:
    """(unit name, start, end, devices) of every unit when each lasts ``seconds[name]``:
    the schedule ``startable`` gives, computed without running anything (for tests and
    for estimating a host's study time from a serial run's timing table)."""
    pending = list(plan_units)
    running: list[tuple[Unit, float, tuple[int, ...]]] = []
    free = list(devices)
    now = 0.0
    out = []
    while pending or running:
        for unit, devs in startable(pending, [u for u, _, _ in running], free):
            pending.remove(unit)
            free = [d for d in free if d not in devs]
            end = now + seconds[unit.name]
            running.append((unit, end, devs))
            out.append((unit.name, now, end, devs))
        if not running:
            raise RuntimeError(f"nothing can start: {pending[0].name} needs {pending[0].devices} devices, "
                               f"the host has {len(devices)}")
        running.sort(key=lambda r: r[1])
        unit, now, devs = running.pop(0)
        free = sorted([*free, *devs])
    return out
