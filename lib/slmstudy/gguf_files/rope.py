"""Llama 3's rope scaling factors (``rope_freqs.weight``): computed, not random.

llama.cpp applies Llama 3.1/3.2 long-context rope scaling through this F32
tensor of one factor per rotary frequency. ``convert_hf_to_gguf.py``
(``LlamaModel.generate_extra_tensors``) computes it from ``rope_scaling``; this
is the same formula, so the tiny and real Llama files rotate positions as the
published ones do.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def llama3_rope_factors(cfg: dict[str, Any]) -> np.ndarray:
    scaling = cfg["rope_scaling"]
    base = float(cfg.get("rope_theta", 10000.0))
    dim = int(cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
    factor = float(scaling.get("factor", 8.0))
    low_freq_factor = float(scaling.get("low_freq_factor", 1.0))
    high_freq_factor = float(scaling.get("high_freq_factor", 4.0))
    # convert_hf_to_gguf reads this from the top level of config.json, not from
    # rope_scaling (where Llama 3.x keeps it); both give 8192 for the catalog's models.
    old_context_len = float(cfg.get("original_max_position_embeddings", 8192))
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor

    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < high_freq_wavelen:  # high frequencies: unchanged
            factors.append(1.0)
        elif wavelen > low_freq_wavelen:  # low frequencies: stretched by `factor`
            factors.append(factor)
        else:  # smooth blend in between
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)
