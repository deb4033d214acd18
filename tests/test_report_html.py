"""The reader's HTML copy of an executed notebook: self-contained, and never the
reason a study stops (the notebook is the record)."""

from __future__ import annotations

import nbformat

from slmstudy.results import report_html


def _notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("1 + 1")]
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    path = tmp_path / "03_batch_scaling.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_page_has_the_banner_and_nothing_fetched_from_the_network(tmp_path):
    out = report_html.render(_notebook(tmp_path), tmp_path / "a.html", status="FAILED", error="cell 3: KeyError 'x'")
    page = out.read_text()
    assert "03_batch_scaling: FAILED" in page and "cell 3: KeyError &#x27;x&#x27;" in page
    assert "Title" in page
    assert not report_html._REMOTE.search(page)


def test_a_renderer_that_fails_leaves_a_page_that_says_why(tmp_path):
    # What the lent GPU host's bundle did to the study before the fix: nbconvert
    # without its templates raised ValueError inside the notebook stage.
    out = report_html.render(_notebook(tmp_path), tmp_path / "b.html", template="no-such-template")
    page = out.read_text()
    assert "03_batch_scaling: passed" in page
    assert "could not be rendered (ValueError: No template sub-directory with name &#x27;no-such-template&#x27;" in page
    assert "03_batch_scaling.ipynb" in page


def test_remote_scripts_and_stylesheets_are_removed():
    page = ('<head><script src="https://cdn.example/require.js"></script>'
            '<link rel="stylesheet" href="http://x/y.css"><script>local()</script></head>')
    assert report_html.offline(page) == "<head><script>local()</script></head>"
