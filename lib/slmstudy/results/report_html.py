"""A self-contained HTML rendering of an executed notebook, to open offline.

nbconvert's "lab" template with images embedded; every script or stylesheet it
would fetch from the network (require.js, MathJax) is left out, and a banner at
the top says whether the run passed, failed or was interrupted, and why.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from ..atomic import write_text

_REMOTE = re.compile(r"""<(script|link)\b[^>]*(?:src|href)=["']https?://[^>]*>(?:\s*</script>)?""", re.IGNORECASE)
COLOURS = {"passed": "#2e7d32", "FAILED": "#c62828", "INTERRUPTED": "#ef6c00"}


def offline(page: str) -> str:
    """The page without anything it would fetch from the network."""
    return _REMOTE.sub("", page)


def render(notebook: Path, out: Path, status: str = "passed", error: str | None = None) -> Path | None:
    """Write ``out``; None (and nothing written) when nbconvert is not installed."""
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    colour = COLOURS.get(status, "#555555")
    banner = (f'<div style="padding:8px 14px;background:{colour};color:white;font-family:sans-serif">'
              f"<b>{html.escape(notebook.stem)}: {html.escape(status)}</b>"
              + (f" &mdash; {html.escape(error)}" if error else "") + "</div>")
    page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, offline(body), count=1)
    return write_text(out, page)
