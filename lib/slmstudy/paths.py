"""Project paths, anchored on the project root rather than the current directory.

Notebooks run with their own folder as the working directory (papermill, nbval,
JupyterLab), tests run from the root: every path therefore derives from the root
found here, never from ``os.getcwd()``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _looks_like_root(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "notebooks").is_dir()


def project_root() -> Path:
    """The checkout that holds ``notebooks/``, ``params/`` and ``outputs/``.

    Order: ``SLMSTUDY_ROOT`` if set; the checkout this package was installed from
    (editable install, the normal case); else the nearest parent of the current
    directory that looks like one.
    """
    env = os.environ.get("SLMSTUDY_ROOT")
    if env:
        return Path(env).resolve()
    candidate = PACKAGE_DIR.parents[1]  # lib/slmstudy -> lib -> root
    if _looks_like_root(candidate):
        return candidate
    here = Path.cwd().resolve()
    for path in (here, *here.parents):
        if _looks_like_root(path):
            return path
    raise RuntimeError(
        "cannot find the slmstudy project root (a folder with pyproject.toml and notebooks/); "
        "set SLMSTUDY_ROOT to your checkout"
    )


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def params_dir() -> Path:
    return project_root() / "params"


def outputs_dir() -> Path:
    return project_root() / "outputs"


def runs_dir() -> Path:
    """Where every notebook run writes its folder (git-ignored)."""
    return Path(os.environ.get("SLMSTUDY_RUNS_DIR") or outputs_dir() / "runs")


def reference_dir() -> Path:
    """Committed reference runs, e.g. ``outputs/reference/h100/03_batch_scaling``."""
    return outputs_dir() / "reference"


def catalog_dir() -> Path:
    return PACKAGE_DIR / "catalog"


def cache_dir() -> Path:
    """Generated model folders (config + quantization config, no weights)."""
    base = os.environ.get("SLMSTUDY_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "slmstudy" if base else Path.home() / ".cache" / "slmstudy"
