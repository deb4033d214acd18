"""How numbers are written in claims, verdicts and reasons."""

from __future__ import annotations

import math

from .units import UNITS


def fmt(x: float | None) -> str:
    """Three significant digits; whole numbers from 1000 up in full (4,096 tokens, 1,777,088,000 params)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_in_expression(x: float) -> str:
    """No thousands separators inside an expression: they would read as argument lists."""
    return f"{x:.10g}"


def with_unit(x: float, unit: str | None) -> str:
    if unit is not None and unit in UNITS and UNITS[unit][0] == "flag" and x in (0, 1):
        return "yes" if x else "no"
    return f"{fmt(x)} {unit}" if unit else fmt(x)
