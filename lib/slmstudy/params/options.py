"""Typed options every notebook shares, each default defined once.

These models cross process boundaries unchanged: an engine job carries its
``EngineOptions`` and ``TelemetryOptions`` to the engine process as JSON and
the worker validates them back into the same types, so nothing downstream reads
a string key with a default of its own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)

from .. import catalog

# Upper bounds a study can sensibly ask for. They stop absurd input (a typo that
# asks for a billion requests at once) before anything is created; real limits of
# the machine (KV-cache capacity, the model's context) are checked beside them.
MAX_BATCH = 65_536
MAX_TOKENS = 1 << 20  # a million tokens of input or output
MAX_REPETITIONS = 10_000
MAX_LIST = 64  # entries of any list of sizes, levels or rates

DEFAULT_START_TIMEOUT_S = 900.0
DEFAULT_JOB_TIMEOUT_S = 1800.0
DEFAULT_INTERVAL_MS = 50


def _known_model(value: str) -> str:
    if value not in catalog.models():
        raise ValueError(f"unknown model {value!r}; allowed: {', '.join(catalog.models())}")
    return value


def _known_precision(value: str) -> str:
    if value not in catalog.precisions():
        raise ValueError(f"unknown precision {value!r}; allowed: {', '.join(catalog.precisions())}")
    return value


ModelKey = Annotated[str, AfterValidator(_known_model)]
PrecisionKey = Annotated[str, AfterValidator(_known_precision)]
Profile = Literal["auto", "cpu", "gpu"]
BatchSize = Annotated[int, Field(gt=0, le=MAX_BATCH)]
Tokens = Annotated[int, Field(gt=0, le=MAX_TOKENS)]
Repetitions = Annotated[int, Field(gt=0, le=MAX_REPETITIONS)]
Warmup = Annotated[int, Field(ge=0, le=1000)]


class Strict(BaseModel):
    """Rejects unknown keys and never coerces types ("5" is not 5)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# Engine arguments the study validates itself; extra_args may not set them
# behind the schema's back (a max_model_len of 16 there would pass every check).
VALIDATED_ENGINE_KEYS = ("model", "max_model_len", "gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens",
                         "enforce_eager", "enable_prefix_caching", "kv_cache_dtype", "attention_backend", "dtype",
                         "quantization", "load_format", "seed", "skip_tokenizer_init", "tokenizer",
                         "tensor_parallel_size")


class EngineOptions(Strict):
    """vLLM engine arguments the study controls. Anything else goes in ``extra_args``."""

    max_model_len: Tokens = 4096
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    # None: the largest batch of the notebook, but never below vLLM's usual 256
    # (so CUDA-graph sizes match a default engine); see ``resolved``.
    max_num_seqs: BatchSize | None = None
    max_num_batched_tokens: PositiveInt | None = None
    enforce_eager: bool = False
    # Off by default: random token-ID prompts never share prefixes, and caching
    # would make repeated prompts (warm-ups) measure a different engine path.
    enable_prefix_caching: bool = False
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    attention_backend: str | None = None
    # GPUs one engine splits the model over (vLLM's tensor parallelism): checked
    # against the GPUs present and the model's attention heads before anything starts.
    tensor_parallel_size: int = Field(1, ge=1, le=8)
    # Passed to vLLM's engine arguments unchanged; names are checked against vLLM
    # before anything starts, and keys the study validates are refused here.
    extra_args: dict[str, Any] = Field(default_factory=dict)
    start_timeout_s: PositiveFloat = DEFAULT_START_TIMEOUT_S

    def resolved(self, max_batch: int) -> "EngineOptions":
        """The options an engine runs with: ``max_num_seqs`` filled in."""
        if self.max_num_seqs is not None:
            return self
        return self.model_copy(update={"max_num_seqs": max(256, max_batch)})


class TelemetryOptions(Strict):
    enabled: bool = True
    # 10 Hz at the least: phases (one decode step is ~2-3 ms, a batch ~1 s) need it.
    interval_ms: int = Field(DEFAULT_INTERVAL_MS, ge=5, le=100)
    gpu_index: NonNegativeInt = 0
    # Seconds of the GPU's idle power measured before each configuration's work,
    # for "above idle" energy (skipped on a CPU, which has no power reading).
    idle_baseline_s: float = Field(1.0, ge=0, le=60)


class Workload(Strict):
    """Token-ID prompts of a fixed length, a fixed output length (``ignore_eos``)."""

    input_len: Tokens
    output_len: Tokens
    batch_sizes: list[BatchSize] = Field(min_length=1, max_length=MAX_LIST)
    repetitions: Repetitions = 5
    warmup: Warmup = 1
    temperature: float = Field(0.0, ge=0, le=10)
