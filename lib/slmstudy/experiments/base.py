"""The one interface every notebook's experiment implements, and the study object
a notebook holds.

An ``Experiment`` is data: its notebook, its parameter schema and a pure function
from its parameters to the jobs it needs measured. Its analyses are module-level
functions that take the ``Study`` and read tables; none of them measures. Every
notebook drives its experiment the same way::

    study = slmstudy.open_study("03_batch_scaling", profile=profile,
                                params_file=params_file, overrides=overrides)
    study.run()                   # measure what the pool lacks, copy this notebook's rows
    batch_scaling.summary(study)  # analyses: tables in, frames and figures out
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd

from .. import catalog
from ..jobs import Job
from ..measure import executor, plan
from ..params import Resolved, StudyParams, show
from ..results.environment import identity, identity_label
from ..results.pool import Pool
from ..results.run_folder import RunFolder

P = TypeVar("P", bound=StudyParams)

# Set by ``python -m slmstudy run`` for the kernels it starts: reuse results of
# other code (``--reuse-older``), and collect only (the CLI has run the plan).
REUSE_ENV = "SLMSTUDY_REUSE_OLDER"
MEASURE_ENV = "SLMSTUDY_MEASURE"


@dataclass(frozen=True)
class Experiment(Generic[P]):
    notebook: str
    title: str
    params: type[P]
    jobs: Callable[[P], list[Job]]


class Study(Generic[P]):
    """A notebook's validated parameters, its run folder and the measurement pool."""

    def __init__(self, experiment: Experiment[P], resolved: Resolved, root: Path | None = None,
                 pool: Pool | None = None):
        self.experiment = experiment
        self.resolved = resolved
        self.notebook = resolved.notebook
        self.params: P = resolved.params  # type: ignore[assignment]
        self.folder = RunFolder(resolved, root)
        self.dir = self.folder.dir
        self.pool = pool or Pool()

    # ------------------------------------------------------------------ run
    def jobs(self) -> list[Job]:
        return self.experiment.jobs(self.params)

    def run(self, reuse_older: bool | None = None) -> pd.DataFrame:
        """Measure every job of this notebook that the pool does not hold (the whole
        study's plan, run by the CLI first, usually leaves nothing to do), then
        copy this notebook's rows into its run folder. One row per job."""
        reuse = os.environ.get(REUSE_ENV) == "1" if reuse_older is None else reuse_older
        measure = os.environ.get(MEASURE_ENV, "1") != "0"
        jobs = self.jobs()
        with self.folder.lock():
            outcomes = executor.execute(plan.build(jobs), self.pool, reuse) if jobs and measure else []
            missing = self.folder.collect(jobs, self.pool, identity_label(identity()), reuse)
        for line in missing:
            print(f"no result: {line}", flush=True)
        return pd.DataFrame([{"job": o.key, "kind": o.kind, "status": o.status, "root_cause": o.root_cause,
                              "seconds": round(o.seconds, 1)} for o in outcomes])

    # ---------------------------------------------------------------- tables
    def table(self, name: str) -> pd.DataFrame:
        return self.folder.table(name)

    def read_json(self, name: str) -> Any:
        return self.folder.read_json(name)

    def environment(self) -> dict[str, Any]:
        return self.folder.environment()

    # ----------------------------------------------------------------- info
    def describe(self) -> pd.DataFrame:
        """The resolved parameters as a two-column table, plus where they came from."""
        flat = pd.json_normalize(self.resolved.as_dict(), sep=".").T.reset_index()
        flat.columns = ["key", "value"]
        flat["value"] = flat["value"].map(_short)
        env = self.environment()
        head = pd.DataFrame([
            {"key": "run folder", "value": show(self.dir)},
            {"key": "profile", "value": self.resolved.profile},
            {"key": "parameter sources", "value": " < ".join(self.resolved.sources)},
            {"key": "device", "value": env.get("gpu_name") or env.get("cpu_model")},
            {"key": "vLLM", "value": f"{env.get('vllm_dist')} {env.get('vllm')}"},
            {"key": "code", "value": env.get("identity")},
            # precisions a profile measures only where the machine can (``where_supported``)
            *({"key": f"not measured here: {prec}", "value": why} for prec, why in self.params.skipped_here().items()),
        ])
        return pd.concat([head, flat], ignore_index=True)

    def caption(self, precision: str | None = None, extra: str = "") -> str:
        """What every figure must say: device, vLLM version, weights, precision."""
        env = self.environment()
        device = env.get("gpu_name") or f"CPU ({env.get('cpu_model')}, {env.get('cpu_count_logical')} cores)"
        prec = catalog.precision(precision).display if precision else None
        parts = [device, f"{env.get('vllm_dist')} {env.get('vllm')}", f"{self.params.weights} weights"]
        if prec:
            parts.append(prec)
        if extra:
            parts.append(extra)
        return " | ".join(str(p) for p in parts)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."
