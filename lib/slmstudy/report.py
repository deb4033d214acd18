"""Tables a reader looks at first, built from the run folder's tidy tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

ENGINE_COLUMNS = {
    "model": "model", "precision": "precision", "weights": "weights", "status": "status",
    "engine_start_s": "engine start (s)", "weights_load_s": "weight load (s)",
    "compile_s": "torch.compile (s)", "graph_capture_s": "CUDA graphs (s)",
    "weights_gib": "weights GiB (vLLM)", "weights_gib_analytic": "weights GiB (analytic)",
    "kv_bytes_per_token": "KV bytes/token", "kv_capacity_tokens": "KV capacity (tokens)",
    "kv_cache_gib": "KV cache GiB", "activation_peak_gib": "activations GiB",
    "cudagraph_gib": "CUDA graphs GiB", "peak_device_mem_gib": "peak device GiB",
    "peak_proc_rss_gib": "peak engine RSS GiB", "gpu_mem_returned": "memory returned",
    "root_cause": "root cause (if failed)",
    "repeat_of": "repeats the engine of",
}


def start_memory_gib(row: Any) -> float:
    """Memory an engine holds without its KV cache: weights, activation peak, CUDA
    graphs and non-torch allocations (the parts a CPU engine lacks count as 0;
    its weights come from the parameter tensors when vLLM reports none)."""
    weights = row.get("weights_gib")
    if weights is None or weights != weights:
        weights = row.get("weights_gib_params")
    parts = [weights, row.get("activation_peak_gib"), row.get("cudagraph_gib"), row.get("non_torch_gib")]
    return float(sum(x for x in parts if x is not None and x == x))


def engine_table(study: Any) -> pd.DataFrame:
    """One row per engine configuration: start-up, memory (measured and analytic), outcome."""
    cfg = study.table("configs")
    if cfg.empty:
        return cfg
    cols = [c for c in ENGINE_COLUMNS if c in cfg and cfg[c].notna().any()]
    return cfg[cols].rename(columns=ENGINE_COLUMNS)
