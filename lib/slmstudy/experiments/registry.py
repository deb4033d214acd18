"""Every notebook's experiment, registered in one place, and the entry points a
notebook and the CLI use: ``resolve`` (validate only) and ``open_study``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .. import params, paths
from ..engine.args import check_extra_args
from ..errors import ParamsError
from .base import Experiment, Study

# notebook -> module of slmstudy.experiments that defines EXPERIMENT
MODULES = {
    "00_report": "claims_report",
    "01_model_vs_model": "model_vs_model",
    "02_precision": "precision",
    "03_batch_scaling": "batch_scaling",
    "04_serving": "serving",
    "05_compare": "compare",
    "06_edge": "edge",
}
REPORTS = ("00_report", "05_compare")  # read other runs; run after the study notebooks


def notebook_name(name: str | Path) -> str:
    """``03_batch_scaling``, ``03_batch_scaling.ipynb`` or ``notebooks/03_batch_scaling.ipynb``."""
    stem = Path(str(name)).name.removesuffix(".ipynb")
    if stem not in MODULES:
        raise ParamsError([f"notebook: unknown {str(name)!r}; known: {', '.join(MODULES)}"])
    return stem


def experiment(notebook: str) -> Experiment[Any]:
    module = importlib.import_module(f".{MODULES[notebook_name(notebook)]}", __package__)
    return module.EXPERIMENT


def available() -> list[str]:
    """Notebooks present in notebooks/, in run order: the study notebooks, then the reports."""
    present = sorted(p.stem for p in paths.notebooks_dir().glob("*.ipynb") if p.stem in MODULES)
    return [n for n in present if n not in REPORTS] + [n for n in REPORTS if n in present]


def resolve(notebook: str, profile: str = "auto", params_file: str | Path | list[str] | None = None,
            overrides: dict[str, Any] | None = None, machine: bool = True) -> params.Resolved:
    """Validate parameters without touching any folder (used by the CLI first);
    ``machine=False``: the files only, not whether this machine can run them."""
    nb = notebook_name(notebook)
    resolved = params.load(nb, experiment(nb).params, profile, params_file, overrides, machine)
    unknown = check_extra_args(list(resolved.params.engine.extra_args))
    if unknown:
        raise ParamsError([f"{resolved.sources[-1]}: key 'engine.extra_args': unknown vLLM engine "
                           f"argument(s) {', '.join(unknown)}; see vllm.engine.arg_utils.EngineArgs"])
    return resolved


def open_study(notebook: str, profile: str = "auto", params_file: str | Path | list[str] | None = None,
               overrides: dict[str, Any] | None = None) -> Study[Any]:
    """Validate parameters (raising ParamsError before anything starts), then
    create or reopen the run folder and record the environment."""
    resolved = resolve(notebook, profile, params_file, overrides)
    study = Study(experiment(resolved.notebook), resolved)
    study.folder.initialise()
    return study
