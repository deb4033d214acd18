"""Units of claims and measurements, and conversion between units of one dimension."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

# unit -> (dimension, factor to the dimension's base). "GB" is read literally as
# 10^9 bytes: the articles never say which they mean, and the notes of the memory
# claims say what the binary reading would change.
UNITS: dict[str, tuple[str, float]] = {
    "B": ("bytes", 1.0), "KB": ("bytes", 1e3), "MB": ("bytes", 1e6), "GB": ("bytes", 1e9),
    "KiB": ("bytes", 1024.0), "MiB": ("bytes", 1024.0**2), "GiB": ("bytes", 1024.0**3),
    "s": ("time", 1.0), "ms": ("time", 1e-3), "min": ("time", 60.0),
    "tok/s": ("token rate", 1.0),
    "req/min": ("request rate", 1.0), "req/s": ("request rate", 60.0),
    "tokens": ("tokens", 1.0),
    "params": ("parameters", 1.0),
    "req": ("requests", 1.0),
    "flag": ("flag", 1.0),
    "%": ("percent", 1.0),
    "J/tok": ("energy per token", 1.0),
    "x": ("ratio", 1.0),
    "cm^2": ("area", 1.0),
    # Spellings a measurement table may use for the same units.
    "bytes": ("bytes", 1.0), "tokens/s": ("token rate", 1.0), "parameters": ("parameters", 1.0),
    "concurrent requests": ("requests", 1.0), "yes=1": ("flag", 1.0), "J/token": ("energy per token", 1.0),
    "J": ("energy per token", 1.0),  # per output token, as the report's j_per_output_token_b1 row says
}


def _known_unit(value: str) -> str:
    if value not in UNITS:
        raise ValueError(f"unknown unit {value!r}; known: {', '.join(UNITS)}")
    return value


Unit = Annotated[str, AfterValidator(_known_unit)]


def convert(value: float, unit: str, to: str) -> float:
    """``value`` in ``unit`` expressed in ``to``; the two must share a dimension."""
    (dim_from, f_from), (dim_to, f_to) = dimension(unit), dimension(to)
    if dim_from != dim_to:
        raise ValueError(f"cannot convert {unit} ({dim_from}) to {to} ({dim_to})")
    return value * f_from / f_to


def dimension(unit: str) -> tuple[str, float]:
    try:
        return UNITS[unit]
    except KeyError:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(UNITS)}") from None
