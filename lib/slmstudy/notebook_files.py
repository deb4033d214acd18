"""The committed notebooks in the form JupyterLab saves them, so that opening and
saving one in JupyterLab leaves git clean: nbformat 4.5 with cell ids, the
project's kernel in ``kernelspec``, the kernel's own ``language_info``, no outputs
and no execution counts (executed copies live in run folders)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

KERNEL_NAME = "python3"
DISPLAY_NAME = "Python 3 (slmstudy)"  # what `make install` registers (Makefile)


def language_info() -> dict[str, Any]:
    """What ipykernel reports for this interpreter (and JupyterLab writes on save)."""
    return {
        "codemirror_mode": {"name": "ipython", "version": 3},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "name": "python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
        "version": ".".join(map(str, sys.version_info[:3])),
    }


def canonical(nb: Any, path: Path) -> Any:
    """``nb`` (an nbformat node) with the metadata, ids and empty outputs JupyterLab keeps."""
    import nbformat

    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = nbformat.from_dict({
        "kernelspec": {"display_name": DISPLAY_NAME, "language": "python", "name": KERNEL_NAME},
        "language_info": language_info(),
    })
    for i, cell in enumerate(nb.cells):
        if not cell.get("id"):
            # stable across runs of this function: from the file and the position
            cell["id"] = hashlib.sha256(f"{path.name}:{i}".encode()).hexdigest()[:8]
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags",)}
    return nb


def normalise(path: Path) -> bool:
    """Rewrite ``path`` in canonical form; True when it changed."""
    import nbformat

    before = path.read_text()
    nb = canonical(nbformat.read(str(path), as_version=4), path)
    nbformat.validate(nb)
    after = nbformat.writes(nb) + ("\n" if not nbformat.writes(nb).endswith("\n") else "")
    if after != before:
        path.write_text(after)
        return True
    return False
