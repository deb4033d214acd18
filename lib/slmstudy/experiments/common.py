"""Building blocks every experiment shares: engines, points, probes, and reading
their results back from a run folder."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PositiveInt

from ..engine.spec import AnatomyCheck, EngineJob, EngineSpec, OverheadCheck, Point
from ..jobs import HardwareProbeJob, OverheadProbeJob
from ..params import Problem, Strict, StudyParams, Workload
from ..params.options import BatchSize
from ..platform import detect


class OverheadParams(Strict):
    """Measure what the telemetry sampler costs: alternate runs with and without it."""

    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1, 64], min_length=1, max_length=8)
    input_len: PositiveInt = 128
    output_len: PositiveInt = 256
    pairs: PositiveInt = Field(5, le=100)
    # windows of the launch-bound probe (telemetry.overhead_probe), each 1 s
    probe_pairs: PositiveInt = Field(20, le=200)


def points(workload: Workload, prefix: str = "b") -> tuple[Point, ...]:
    return tuple(
        Point(name=f"{prefix}{b}", batch=b, input_len=workload.input_len, output_len=workload.output_len,
              repetitions=workload.repetitions, warmup=workload.warmup, temperature=workload.temperature)
        for b in workload.batch_sizes
    )


def engine_spec(p: StudyParams, model: str, precision: str, max_batch: int) -> EngineSpec:
    """The engine of ``model`` in ``precision`` as these parameters configure it.
    Notebooks asking for the same engine get the same spec, so a study runs it once."""
    return EngineSpec(model=model, precision=precision, weights=p.weights, weights_path=p.weights_paths.get(model),
                      engine=p.engine.resolved(max_batch), telemetry=p.telemetry, seed=p.seed)


def engine_job(p: StudyParams, model: str, precision: str, pts: tuple[Point, ...], max_batch: int | None = None,
               **options: Any) -> EngineJob:
    batch = max_batch or max((pt.batch for pt in pts), default=1)
    return EngineJob(engine=engine_spec(p, model, precision, batch), points=pts, timeout_s=p.config_timeout_s,
                     **options)


def overhead_check(o: OverheadParams) -> OverheadCheck:
    return OverheadCheck(batch_sizes=tuple(o.batch_sizes), input_len=o.input_len, output_len=o.output_len,
                         pairs=o.pairs)


def hardware_job() -> HardwareProbeJob:
    plat = detect()
    return HardwareProbeJob(device=plat.gpu_name if plat.engine_kind == "cuda" else f"cpu x{plat.cpu_count}")


def overhead_probe_job(p: StudyParams, o: OverheadParams) -> OverheadProbeJob:
    return OverheadProbeJob(interval_ms=p.telemetry.interval_ms, pairs=o.probe_pairs)


def hardware_limits(study: Any) -> dict[str, Any]:
    """Measured bandwidth and matmul peaks of this machine (the hardware probe's
    result, copied into the run folder). ``study``: a Study, or a RunView of a
    committed folder (the README's generator reads those)."""
    hw = getattr(study, "folder", study).hardware()
    if hw is None:
        raise FileNotFoundError(f"{study.dir}: no hardware probe result; run the notebook's run step first")
    return hw


class AnatomyParams(Strict):
    """Where a decode step's time goes: at each of ``batch_sizes`` (each one of the
    sweep's), ``steps`` decode steps from the middle of a batch of the sweep's
    lengths are profiled on the sweep's engine, after its measured runs, and every
    kernel (CPU: torch op) classified. The sum check compares the classes and the
    device's idle time with the sweep's time per output token at that batch."""

    batch_sizes: list[BatchSize] = Field(default_factory=lambda: [1, 16, 64, 256], min_length=1, max_length=8)
    steps: int = Field(32, ge=2, le=512)
    sum_tolerance_pct: float = Field(5.0, gt=0)

    def check(self, workload: Workload) -> list[Problem]:
        problems = []
        extra = sorted(set(self.batch_sizes) - set(workload.batch_sizes))
        if extra:
            problems.append(Problem(("anatomy.batch_sizes", "workload.batch_sizes"),
                                    f"anatomy batch sizes {extra} are not in the sweep (the sum check needs the "
                                    f"sweep's time per token there); allowed: {sorted(workload.batch_sizes)}"))
        if workload.output_len < self.steps + 4:
            problems.append(Problem(("anatomy.steps", "workload.output_len"),
                                    f"a window of {self.steps} decode steps needs output_len >= {self.steps + 4} "
                                    f"(the window sits inside the output), not {workload.output_len}"))
        return problems


def anatomy_check(a: AnatomyParams | None, w: Workload) -> AnatomyCheck | None:
    """The engine's anatomy check: the parameters' batch sizes at the workload's lengths and temperature."""
    if a is None:
        return None
    return AnatomyCheck(batch_sizes=tuple(sorted(set(a.batch_sizes))), input_len=w.input_len,
                        output_len=w.output_len, steps=a.steps, temperature=w.temperature)
