"""Building blocks every experiment shares."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from pydantic import Field, PositiveInt

from ..engine.spec import ConfigSpec, OverheadCheck, Point
from ..params import StudyParams, Strict, Workload


class OverheadParams(Strict):
    """Measure what the telemetry sampler costs: alternate runs with and without it."""

    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1, 64], min_length=1)
    input_len: PositiveInt = 128
    output_len: PositiveInt = 256
    pairs: PositiveInt = 5
    # windows of the launch-bound probe (telemetry.overhead_probe), each 1 s
    probe_pairs: PositiveInt = 20


def points(workload: Workload, prefix: str = "b") -> tuple[Point, ...]:
    return tuple(
        Point(name=f"{prefix}{b}", batch=b, input_len=workload.input_len, output_len=workload.output_len,
              repetitions=workload.repetitions, warmup=workload.warmup, temperature=workload.temperature)
        for b in workload.batch_sizes
    )


def engine_dict(p: StudyParams, max_batch: int) -> dict[str, Any]:
    engine = p.engine.model_dump()
    if engine["max_num_seqs"] is None:
        # Every request of the largest batch must be scheduled at once; never
        # below vLLM's usual 256 so CUDA graph sizes match a default engine.
        engine["max_num_seqs"] = max(256, max_batch)
    return engine


def make_spec(p: StudyParams, model: str, precision: str, pts: tuple[Point, ...],
              overhead: OverheadParams | None = None, suffix: str = "", env: dict[str, str] | None = None,
              clean_dirs: tuple[str, ...] = (), **labels: Any) -> ConfigSpec:
    return ConfigSpec(
        key=f"{model}__{precision}__{p.weights}{suffix}",
        model=model,
        precision=precision,
        weights=p.weights,
        weights_path=p.weights_paths.get(model),
        engine=engine_dict(p, max((pt.batch for pt in pts), default=1)),
        points=pts,
        telemetry=p.telemetry.model_dump(),
        seed=p.seed,
        timeout_s=p.config_timeout_s,
        overhead_check=OverheadCheck(tuple(overhead.batch_sizes), overhead.input_len, overhead.output_len,
                                     overhead.pairs) if overhead else None,
        labels=labels,
        env=env or {},
        clean_dirs=clean_dirs,
    )


def hardware_limits(study: Any) -> dict[str, Any]:
    """Measured bandwidth and matmul peaks of this machine (``hardware.json`` in the
    run folder; probed once, in its own process, while no engine holds the device)."""
    path = study.dir / "hardware.json"
    if not path.exists():
        proc = subprocess.run([sys.executable, "-m", "slmstudy.hardware", str(path)],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"hardware probe failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(path.read_text())
