"""slmstudy: reproducible study notebooks on how small LLMs behave under vLLM.

Notebooks call ``slmstudy.open_study(NOTEBOOK, ...)`` and then one library call
per step. Nothing heavy is imported here: the names below are looked up on first
use, so ``import slmstudy.params`` (or any low module) never pulls in the
experiments that sit on top of it.
"""

from __future__ import annotations

from typing import Any

from .errors import ParamsError, SlmstudyError, UnsupportedVariant

__all__ = ["ParamsError", "SlmstudyError", "UnsupportedVariant", "open_study", "resolve"]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    if name in ("open_study", "resolve"):
        from .experiments import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'slmstudy' has no attribute {name!r}")
