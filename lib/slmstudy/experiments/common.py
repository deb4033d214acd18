"""Building blocks every experiment shares: engines, points, probes, and reading
their results back from a run folder."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PositiveInt

from ..engine.spec import EngineJob, EngineSpec, OverheadCheck, Point
from ..jobs import HardwareProbeJob, OverheadProbeJob
from ..params import Strict, StudyParams, Workload
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
    result, copied into the run folder)."""
    hw = study.folder.hardware()
    if hw is None:
        raise FileNotFoundError(f"{study.dir}: no hardware probe result; run the notebook's run step first")
    return hw
