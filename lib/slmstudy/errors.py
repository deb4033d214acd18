"""Exceptions with messages meant for the person running the study."""

from __future__ import annotations


class SlmstudyError(Exception):
    """Base class: the message is complete and says what to do."""


class ParamsError(SlmstudyError):
    """Invalid study parameters. Raised before any engine starts.

    ``problems`` holds one line per offending key, each naming the file, the key
    and what is allowed, so a notebook or the CLI can show all of them at once.
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(f"invalid study parameters:\n  {lines}")


class UnsupportedVariant(SlmstudyError):
    """A precision / engine combination this machine cannot run (e.g. fp8 on CPU)."""


class CatalogError(SlmstudyError):
    """The shipped model or precision catalog is inconsistent."""
