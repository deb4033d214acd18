"""Every kind of measurement a study runs, as one typed union.

* ``EngineJob``: an offline engine and the points measured on it (``engine.spec``);
* ``BenchLatencyJob``: vLLM's ``bench latency`` with an engine's arguments;
* ``ServeJob``: ``vllm serve`` under load (``serving.spec``);
* ``HardwareProbeJob``: the machine's memory bandwidth and matmul peaks;
* ``OverheadProbeJob``: what the telemetry sampler costs a launch-bound loop;
* ``EdgeJob``: llama.cpp running a GGUF file on the host's CPU cores (``edge.spec``);
* ``GgufFileJob``: one GGUF file built and its size measured.

Each has a ``key`` (readable), a ``digest`` (content) and ``satisfies(need)``: a
job measured once can answer every notebook that asks for less.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter

from .edge.spec import EdgeJob, GgufFileJob
from .engine.spec import BenchLatencyJob, EngineJob, Frozen
from .serving.spec import ServeJob


class HardwareProbeJob(Frozen):
    """Bandwidth and matmul peaks of this machine, probed while nothing else runs."""

    kind: Literal["hardware"] = "hardware"
    device: str  # what the probe is for (NVML's name or the CPU model): a pool copied elsewhere re-probes

    @property
    def key(self) -> str:
        return "hardware"

    def satisfies(self, need: "HardwareProbeJob") -> bool:
        return self == need


class OverheadProbeJob(Frozen):
    """A steady launch-bound loop with and without the telemetry sampler."""

    kind: Literal["overhead_probe"] = "overhead_probe"
    interval_ms: int
    pairs: int = Field(gt=0)
    window_s: float = Field(1.0, gt=0)

    @property
    def key(self) -> str:
        return "overhead_probe"

    def satisfies(self, need: "OverheadProbeJob") -> bool:
        return self == need


Job = Annotated[Union[EngineJob, BenchLatencyJob, ServeJob, HardwareProbeJob, OverheadProbeJob, EdgeJob,
                      GgufFileJob],
                Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Job] = TypeAdapter(Job)


def load_job(path: Path) -> Job:
    return _ADAPTER.validate_json(Path(path).read_text())


def job_from_dict(data: dict) -> Job:
    return _ADAPTER.validate_python(data)


def dump(job: Job) -> str:
    return json.dumps(job.model_dump(mode="json"), indent=2, sort_keys=True)
