"""What a notebook holds on to: its validated parameters, its run folder, and the
steps that run configurations and load their tables.

Notebook usage::

    study = slmstudy.open_study("03_batch_scaling", profile=profile,
                                params_file=params_file, overrides=overrides)
    study.run()            # each engine configuration in its own process
    study.table("runs")    # tidy results
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from . import catalog, params
from .engine import runner
from .engine.args import check_extra_args
from .engine.spec import ConfigSpec
from .errors import ParamsError
from .results.run_folder import RunFolder

# notebook name -> experiment module (in slmstudy.experiments)
EXPERIMENTS = {
    "00_report": "report",
    "01_model_vs_model": "model_vs_model",
    "02_precision": "precision",
    "03_batch_scaling": "batch_scaling",
    "04_serving": "serving",
}


def experiment_module(notebook: str) -> Any:
    if notebook not in EXPERIMENTS:
        raise ParamsError([f"notebook: unknown {notebook!r}; known: {', '.join(EXPERIMENTS)}"])
    return importlib.import_module(f".experiments.{EXPERIMENTS[notebook]}", __package__)


def resolve(notebook: str, profile: str = "auto", params_file: str | Path | list[str] | None = None,
            overrides: dict[str, Any] | None = None) -> params.Resolved:
    """Validate parameters without touching the run folder (used by the CLI first)."""
    exp = experiment_module(notebook)
    resolved = params.load(notebook, exp.Params, profile, params_file, overrides)
    unknown = check_extra_args(list(resolved.params.engine.extra_args))
    if unknown:
        raise ParamsError([f"{resolved.sources[-1]}: key 'engine.extra_args': unknown vLLM engine "
                           f"argument(s) {', '.join(unknown)}; see vllm.engine.arg_utils.EngineArgs"])
    return resolved


class Study:
    def __init__(self, resolved: params.Resolved, root: Path | None = None):
        self.resolved = resolved
        self.notebook = resolved.notebook
        self.params = resolved.params
        self.experiment = experiment_module(self.notebook)
        self.folder = RunFolder(resolved, root)
        self.dir = self.folder.dir

    # ----------------------------------------------------------------- info
    def describe(self) -> pd.DataFrame:
        """The resolved parameters as a two-column table, plus where they came from."""
        flat = pd.json_normalize(self.resolved.as_dict(), sep=".").T.reset_index()
        flat.columns = ["key", "value"]
        env = self.folder.environment()
        head = pd.DataFrame([
            {"key": "run folder", "value": str(self.dir)},
            {"key": "profile", "value": self.resolved.profile},
            {"key": "parameter sources", "value": " < ".join(self.resolved.sources)},
            {"key": "device", "value": env.get("gpu_name") or env.get("cpu_model")},
            {"key": "vLLM", "value": f"{env.get('vllm_dist')} {env.get('vllm')}"},
        ])
        return pd.concat([head, flat], ignore_index=True)

    def configs(self) -> list[ConfigSpec]:
        return self.experiment.configs(self.params)

    def caption(self, precision: str | None = None, extra: str = "") -> str:
        """What every figure must say: device, vLLM version, weights, precision."""
        env = self.folder.environment()
        device = env.get("gpu_name") or f"CPU ({env.get('cpu_model')}, {env.get('cpu_count_logical')} cores)"
        prec = catalog.precision(precision).display if precision else None
        parts = [device, f"{env.get('vllm_dist')} {env.get('vllm')}", f"{self.params.weights} weights"]
        if prec:
            parts.append(prec)
        if extra:
            parts.append(extra)
        return " | ".join(str(p) for p in parts)

    # ------------------------------------------------------------------ run
    def run(self, specs: list[ConfigSpec] | None = None,
            before_each: Callable[[ConfigSpec], None] | None = None) -> pd.DataFrame:
        """Run (or skip, when done before) every configuration; one row per outcome.
        ``before_each(spec)`` runs just ahead of each configuration that is not done yet."""
        specs = self.configs() if specs is None else specs
        total = len(specs)
        started: dict[str, float] = {}

        def progress(spec: ConfigSpec, outcome: runner.Outcome | None) -> None:
            i = [s.key for s in specs].index(spec.key) + 1
            if outcome is None:
                started[spec.key] = time.monotonic()
                print(f"[{i}/{total}] {spec.key}: running ...", flush=True)
            elif outcome.status == "skipped":
                print(f"[{i}/{total}] {spec.key}: done in an earlier run, skipped", flush=True)
            elif outcome.status == "ok":
                print(f"[{i}/{total}] {spec.key}: ok in {outcome.seconds:.0f} s", flush=True)
            else:
                print(f"[{i}/{total}] {spec.key}: FAILED after {outcome.seconds:.0f} s: {outcome.root_cause}", flush=True)

        outcomes = runner.run_all(specs, self.folder.configs_dir, self.folder.store_config_tables, progress,
                                   before_each)
        self.folder.consolidate()
        return pd.DataFrame([o.__dict__ for o in outcomes])

    # --------------------------------------------------------------- tables
    def table(self, name: str) -> pd.DataFrame:
        return self.folder.table(name)


def open_study(notebook: str, profile: str = "auto", params_file: str | Path | list[str] | None = None,
               overrides: dict[str, Any] | None = None) -> Study:
    """Validate parameters (raising ParamsError before anything starts), then
    create or reopen the run folder and record the environment."""
    study = Study(resolve(notebook, profile, params_file, overrides))
    study.folder.initialise()
    return study
