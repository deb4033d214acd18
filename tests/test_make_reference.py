"""tools/make_reference.py: what a reference folder keeps. Every device call carries the
whole tracked tree in 64 MiB, so renderings the executed notebook already holds stay out,
and a figure file stays only where the project's Markdown shows it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd


def _tool():
    spec = importlib.util.spec_from_file_location("make_reference", Path(__file__).resolve().parents[1] / "tools" / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_folder(src):
    (src / "figures").mkdir(parents=True)
    (src / "tables").mkdir()
    (src / "configs" / "a" / "tables").mkdir(parents=True)
    (src / "03.ipynb").write_text(json.dumps({"cells": []}))
    (src / "03.html").write_text("<html/>")
    (src / "papermill.log").write_text("x")
    (src / ".lock").write_text("")
    (src / "params.yaml").write_text("batch_sizes: [1]\n")
    for name in ("shown", "hidden"):
        (src / "figures" / f"{name}.png").write_bytes(b"\x89PNG")
        (src / "figures" / f"{name}.svg").write_text("<svg/>")
    pd.DataFrame({"tok_s": [1.5], "itl_s": [[0.1, 0.2]]}).to_parquet(src / "tables" / "requests.parquet")
    pd.DataFrame({"tok_s": [1.5]}).to_parquet(src / "configs" / "a" / "tables" / "runs.parquet")
    (src / "configs" / "a" / "status.json").write_text("{}")


def test_reference_keeps_the_notebook_tables_and_linked_figures_only(tmp_path):
    root = tmp_path / "repo"
    dest = root / "outputs" / "reference" / "h200" / "03_batch_scaling"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text(
        "![a](outputs/reference/h200/03_batch_scaling/figures/shown.png)\n"
        "[not an image](outputs/reference/h200/03_batch_scaling/figures/hidden.svg)\n")
    _run_folder(tmp_path / "run")
    assert _tool().main(tmp_path / "run", dest, root=root) == 0
    kept = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert kept == ["03.ipynb", "configs/a/status.json", "figures/shown.png", "params.yaml",
                    "tables/requests.parquet"]
    # the per-token gaps stay in the full run folder
    assert list(pd.read_parquet(dest / "tables" / "requests.parquet").columns) == ["tok_s"]


def test_a_figure_linked_relative_to_a_reference_readme_is_kept(tmp_path):
    root = tmp_path / "repo"
    ref = root / "outputs" / "reference" / "h200"
    ref.mkdir(parents=True)
    (ref / "README.md").write_text("![b](03_batch_scaling/figures/hidden.png)\n")
    _run_folder(tmp_path / "run")
    _tool().main(tmp_path / "run", ref / "03_batch_scaling", root=root)
    assert (ref / "03_batch_scaling" / "figures" / "hidden.png").exists()
    assert not (ref / "03_batch_scaling" / "figures" / "shown.png").exists()


def test_lean_references_keep_no_notebook_and_no_figures(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text("![a](outputs/reference/cpu/x/figures/shown.png)\n")
    _run_folder(tmp_path / "run")
    dest = root / "outputs" / "reference" / "cpu" / "x"
    _tool().main(tmp_path / "run", dest, lean=True, root=root)
    assert not list(dest.rglob("*.ipynb")) and not (dest / "figures").exists()
    assert (dest / "tables" / "requests.parquet").exists()
