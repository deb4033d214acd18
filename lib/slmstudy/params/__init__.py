"""Typed, strict study parameters: the shared options (``options``), the keys every
notebook has and the checks between keys (``schema``), and the loader that merges
a profile with the user's files and reports every problem at once (``loader``)."""

from .loader import Resolved, load, resolve_profile, show
from .options import (
    DEFAULT_INTERVAL_MS,
    DEFAULT_JOB_TIMEOUT_S,
    DEFAULT_START_TIMEOUT_S,
    MAX_LIST,
    BatchSize,
    EngineOptions,
    ModelKey,
    PrecisionKey,
    Profile,
    Repetitions,
    Strict,
    TelemetryOptions,
    Tokens,
    Warmup,
    Workload,
)
from .schema import Problem, StudyParams, cross_check, kv_capacity_tokens

__all__ = [
    "DEFAULT_INTERVAL_MS", "DEFAULT_JOB_TIMEOUT_S", "DEFAULT_START_TIMEOUT_S", "BatchSize", "EngineOptions",
    "MAX_LIST",
    "ModelKey", "PrecisionKey", "Problem", "Profile", "Repetitions", "Resolved", "Strict", "StudyParams",
    "TelemetryOptions", "Tokens", "Warmup", "Workload", "cross_check", "kv_capacity_tokens", "load",
    "resolve_profile", "show",
]
