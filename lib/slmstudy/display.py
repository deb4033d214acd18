"""How notebooks show results to a reader: a few columns with units in the
headers, numbers without scientific notation or NaN, verdicts as sentences.
The full tables stay in the run folder's ``tables/``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .results.columns import header

MAX_COLUMNS = 10


def number(value: Any) -> str:
    """3 significant digits, whole numbers from 1000 up with separators, "–" for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int,)) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{value:,.0f}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        digits = max(0, 2 - int(math.floor(math.log10(abs(value)))))
        return f"{value:,.{min(digits, 6)}f}"
    return str(value)


def table(df: pd.DataFrame, columns: Sequence[str] | None = None, max_rows: int = 60) -> Any:
    """The columns asked for (those present, at most ten), headers with units, readable numbers."""
    if df is None or df.empty:
        return pd.DataFrame({"": ["nothing to show"]}).style.hide(axis="index")
    # None of the asked-for columns (a note saying why a check did not run): show what there is
    cols = [c for c in (columns or df.columns) if c in df][:MAX_COLUMNS] or list(df.columns)[:MAX_COLUMNS]
    shown = df[cols].head(max_rows).rename(columns=header)
    return shown.style.format(number).hide(axis="index")


def verdict(text: str) -> Any:
    """A sentence stating a section's verdict, shown at its top."""
    from IPython.display import Markdown

    return Markdown(f"**Verdict:** {text}")


def markdown(text: str) -> Any:
    """Prose the package holds (a rule the analysis applies), shown as written there."""
    from IPython.display import Markdown

    return Markdown(text)
