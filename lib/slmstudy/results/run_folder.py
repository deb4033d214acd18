"""One folder per notebook run under ``outputs/runs/<notebook>/<profile>-<digest>/``.

The digest is of the resolved parameters: re-running a notebook with the same
parameters lands in the same folder, skips configurations already done and
retries failed ones; other parameters get a folder of their own, so every run is
kept. Layout::

    params.yaml          resolved parameters (what the schema accepted)
    environment.json     GPU, driver, CUDA, torch, vLLM, Python, git commit, host
    executions.jsonl     one line per execution of the notebook into this folder
    configs/<key>/       per engine configuration: spec.json, engine.log,
                         events.jsonl, telemetry.jsonl, status.json, tables/
    tables/              consolidated tidy tables (Parquet + CSV)
    figures/             PNG and SVG
    notebook.ipynb       the executed notebook (written by ``python -m slmstudy run``)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .. import paths
from ..atomic import write_json, write_table, write_text
from ..params import Resolved
from . import environment
from . import tables as tables_mod

TABLES = ("configs", "runs", "requests", "telemetry", "phases", "point_errors", "overhead", "agreement")
CSV_TABLES = {"configs", "runs", "phases", "point_errors", "overhead"}  # small enough to diff


def folder_for(resolved: Resolved) -> Path:
    return paths.runs_dir() / resolved.notebook / f"{resolved.profile}-{resolved.digest()}"


class RunFolder:
    def __init__(self, resolved: Resolved, root: Path | None = None):
        self.resolved = resolved
        self.dir = Path(root) if root else folder_for(resolved)
        self.configs_dir = self.dir / "configs"
        self.tables_dir = self.dir / "tables"
        self.figures_dir = self.dir / "figures"

    # ---------------------------------------------------------------- records
    def initialise(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text(self.dir / "params.yaml", yaml.safe_dump(
            {"notebook": self.resolved.notebook, "profile": self.resolved.profile,
             "sources": list(self.resolved.sources), "params": self.resolved.as_dict()},
            sort_keys=False))
        env = environment.capture()
        write_json(self.dir / "environment.json", env)
        with open(self.dir / "executions.jsonl", "a") as fh:
            fh.write(json.dumps({"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 "git_commit": env.get("git_commit")}) + "\n")

    def environment(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / "environment.json").read_text())
        except FileNotFoundError:
            return {}

    def write_json(self, name: str, data: Any) -> Path:
        return write_json(self.dir / name, data)

    def read_json(self, name: str) -> Any:
        return json.loads((self.dir / name).read_text())

    # ----------------------------------------------------------------- tables
    def store_config_tables(self, cdir: Path, spec: Any, status: dict[str, Any]) -> None:
        """Called by the runner after each configuration (also a failed one)."""
        built = tables_mod.build(cdir, spec, status)
        for name, df in built.items():
            if not df.empty:
                write_table(df, cdir / "tables" / name, csv=False)
            else:
                (cdir / "tables" / f"{name}.parquet").unlink(missing_ok=True)
        self.consolidate()

    def consolidate(self) -> None:
        """Concatenate every configuration's tables into ``tables/``."""
        for name in TABLES:
            parts = [pd.read_parquet(p) for p in sorted(self.configs_dir.glob(f"*/tables/{name}.parquet"))]
            parts = [p for p in parts if not p.empty]
            if parts:
                write_table(pd.concat(parts, ignore_index=True), self.tables_dir / name, csv=name in CSV_TABLES)

    def table(self, name: str) -> pd.DataFrame:
        path = self.tables_dir / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    # ---------------------------------------------------------------- figures
    def save_figure(self, fig: Any, name: str) -> list[Path]:
        from ..atomic import write_with

        self.figures_dir.mkdir(parents=True, exist_ok=True)
        out = []
        for ext in ("png", "svg"):
            out.append(write_with(self.figures_dir / f"{name}.{ext}",
                                  lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight")))
        return out
