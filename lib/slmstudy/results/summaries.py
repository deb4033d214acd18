"""Tables a reader looks at first, built from a run folder's tidy tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

ENGINE_COLUMNS = {
    "model": "model", "precision": "precision", "status": "status",
    "engine_start_s": "engine start (s)", "compile_s": "torch.compile (s)", "graph_capture_s": "CUDA graphs (s)",
    "weights_gib": "weights (GiB)", "weights_gib_analytic": "weights, analytic (GiB)",
    "kv_bytes_per_token": "KV bytes/token", "kv_capacity_tokens": "KV capacity (tokens)",
    "kv_cache_gib": "KV cache (GiB)", "peak_device_mem_gib": "peak device (GiB)",
    "root_cause": "root cause (if failed)",
}


def weights_gib(row: Any) -> float:
    """The weights' memory of an engine row. New tables fill ``weights_gib`` from the
    best source they had (``engine_tables``); rows written before that left it
    empty on the CPU engine and kept the parameter tensors' bytes beside it."""
    value = row.get("weights_gib")
    if value is None or value != value:
        value = row.get("weights_gib_params")
    return float(value) if value is not None else float("nan")


def start_memory_gib(row: Any) -> float:
    """Memory an engine holds without its KV cache: weights, activation peak, CUDA
    graphs and non-torch allocations (the parts a CPU engine lacks count as 0)."""
    parts = [weights_gib(row), row.get("activation_peak_gib"), row.get("cudagraph_gib"), row.get("non_torch_gib")]
    return float(sum(x for x in parts if x is not None and x == x))


def engine_table(study: Any) -> pd.DataFrame:
    """One row per engine: start-up, memory (measured and analytic), outcome."""
    cfg = study.table("configs")
    if cfg.empty:
        return cfg
    cols = [c for c in ENGINE_COLUMNS if c in cfg and cfg[c].notna().any()]
    return cfg[cols].rename(columns=ENGINE_COLUMNS)
