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


def _template_dirs() -> list[str]:
    """nbconvert's own templates beside the package, for installs that put data
    files there rather than under a Jupyter path (``pip install --target``, as the
    lent GPU host's offline bundle is: there nbconvert finds no "lab" template)."""
    import nbconvert

    here = Path(nbconvert.__file__).resolve().parents[1] / "share" / "jupyter" / "nbconvert" / "templates"
    return [str(here)] if here.is_dir() else []


def _banner(name: str, status: str, error: str | None) -> str:
    colour = COLOURS.get(status, "#555555")
    return (f'<div style="padding:8px 14px;background:{colour};color:white;font-family:sans-serif">'
            f"<b>{html.escape(name)}: {html.escape(status)}</b>"
            + (f" &mdash; {html.escape(error)}" if error else "") + "</div>")


def render(notebook: Path, out: Path, status: str = "passed", error: str | None = None,
           template: str = "lab") -> Path | None:
    """Write ``out``; None (and nothing written) when nbconvert is not installed.

    The page is a reader's copy, the notebook is the record: when nbconvert cannot
    render it (a missing template, a broken install), the page says why and points
    at the notebook, and the study goes on."""
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    banner = _banner(notebook.stem, status, error)
    try:
        nb = nbformat.read(str(notebook), as_version=4)
        extra = _template_dirs()  # "lab" found there, and its "base/..." includes resolved from there
        exporter = HTMLExporter(template_name=template, embed_images=True, extra_template_basedirs=extra,
                                extra_template_paths=extra)
        body, _ = exporter.from_notebook_node(nb)
    except Exception as exc:  # noqa: BLE001 - any failure of the renderer leaves the notebook as the record
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return write_text(out, f"<!DOCTYPE html><html><body>{banner}<p style=\"font-family:sans-serif\">"
                               f"This page could not be rendered ({html.escape(reason)}); open "
                               f"<code>{html.escape(notebook.name)}</code> instead.</p></body></html>\n")
    page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, offline(body), count=1)
    return write_text(out, page)
