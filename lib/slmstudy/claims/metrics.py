"""The metrics a claim can be judged on: what the report must measure under each id,
in which unit, and whether it depends on the model and the precision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator


@dataclass(frozen=True)
class Metric:
    """What the report must provide under this id; ``unit`` is the canonical unit."""

    definition: str
    unit: str
    per_model: bool = True
    per_precision: bool = True


METRICS: dict[str, Metric] = {
    "engine_start_cold_s": Metric("engine start until ready to serve, first start (no vLLM compile cache)", "s"),
    "engine_start_warm_s": Metric("engine start until ready, second start reusing vLLM's compile cache", "s"),
    "weights_gib": Metric("device memory of the model weights as vLLM reports it", "GiB"),
    "start_memory_gib": Metric(
        "device memory the engine holds excluding the KV cache: weights + activation peak + CUDA graphs + non-torch",
        "GiB"),
    "peak_memory_gib": Metric(
        "device memory the engine process held at its peak, KV cache included, at gpu_memory_utilization 0.9", "GiB"),
    "workload_memory_gib": Metric("start_memory_gib plus the KV cache the workload actually needs", "GiB"),
    "ttft_b1_s": Metric("time to first token of a single request", "s"),
    "output_tok_s_b1": Metric("output tokens per second of a single request (decode speed)", "tok/s"),
    "output_tok_s_b4": Metric("output tokens per second of a batch of 4 requests (throughput)", "tok/s"),
    "req_per_min_b4": Metric("completed requests per minute at batch 4", "req/min"),
    "tpot_b1_s": Metric("time per output token after the first, single request", "s"),
    "kv_bytes_per_token": Metric("KV-cache bytes one token occupies", "B"),
    "kv_capacity_tokens": Metric("tokens the KV cache holds at gpu_memory_utilization 0.9", "tokens"),
    "max_context_tokens": Metric("the config's max_position_embeddings", "tokens", per_precision=False),
    "params_total": Metric("parameters in the model (tied weights counted once)", "params", per_precision=False),
    "params_non_embedding": Metric("params_total minus the input embedding", "params", per_precision=False),
    "gguf_q4_k_m_file_gb": Metric("size on disk of the model's GGUF Q4_K_M file (06_edge builds it: llama.cpp's "
                                  "Q4_K_M tensor types, random weights)", "GB", per_precision=False),
    "tensor_parallel_supported": Metric("1 if vLLM runs the model with tensor parallelism, else 0", "flag",
                                        per_precision=False),
    "paged_attention_supported": Metric("1 if vLLM serves the model from its paged KV cache, else 0", "flag",
                                        per_precision=False),
    "time_100in_512out_s": Metric("end-to-end time of one request, 100 input and 512 output tokens", "s"),
    "tok_s_100in_512out": Metric("512 / time_100in_512out_s (article 001's speed test)", "tok/s"),
    "j_per_output_token_b1": Metric("GPU energy per output token, single request", "J/tok"),
    "gpm_sm_active_pct_b1": Metric("GPM SM activity during single-request decode", "%"),
    "serving_max_concurrency_meeting_ttft_slo": Metric(
        "largest tested concurrency of the serving study whose mean TTFT is <= 200 ms", "req"),
    "serving_mean_ttft_s_c16": Metric("serving study: mean TTFT at concurrency 16", "s"),
    "serving_mean_e2e_s_c16": Metric("serving study: mean end-to-end request latency at concurrency 16", "s"),
    # Added for article 000's "the lead grows under concurrency": A's lead at batch 4
    # over its lead at batch 1 equals A's batching gain over B's.
    "output_tok_s_b4_over_b1": Metric("output_tok_s_b4 / output_tok_s_b1 of the same model and precision", "x"),
}


def _known_metric(value: str) -> str:
    if value not in METRICS:
        raise ValueError(f"unknown metric {value!r}; known: {', '.join(METRICS)}")
    return value


MetricId = Annotated[str, AfterValidator(_known_metric)]
