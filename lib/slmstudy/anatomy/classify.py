"""Kernel (or CPU op) names -> what part of a decode step they do.

Names are what the profiler records: CUDA kernel names on a GPU (cuBLASLt's
``nvjet_*``, CUTLASS, Machete / Marlin for four-bit weights, FlashAttention,
Triton kernels that torch.compile fused and named after their ops), torch op
names on vLLM's CPU backend (``_C::weight_packed_linear``, ``aten::mul``, ...).
The rules are ordered: the first that matches wins, so attention kernels built
on CUTLASS are attention, not GEMM, and split-K reductions stay with their GEMM.
Whatever no rule knows is ``other`` and is listed by name in the notebooks, so
an unknown kernel is visible rather than silently misfiled.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# Classes in the order the tables and figures show them.
GEMM = "gemm"
CLASSES = ("gemm", "attention", "elementwise", "act_quant", "sampling", "communication", "memcpy", "other")
LABELS = {
    "gemm": "GEMM (linear layers, lm_head)",
    "attention": "attention (and KV-cache writes)",
    "elementwise": "norms, activations, rotary, other element-wise",
    "act_quant": "activation quantisation",
    "sampling": "sampling and logits processing",
    "communication": "communication between tensor-parallel ranks (all-reduce, all-gather)",
    "memcpy": "memory copies and sets",
    "other": "other (unclassified)",
}
# GEMMs of one decoder layer in execution order (vLLM fuses q/k/v and gate/up),
# then the lm_head once per step.
LAYER_ROLES = ("qkv", "o", "gate_up", "down")
LM_HEAD = "lm_head"
ROLES = (*LAYER_ROLES, LM_HEAD)


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(parts), re.IGNORECASE)


_MEMCPY = _rx(r"^memcpy", r"^memset", r"memcpy[ _]", r"copy_kernel", r"^aten::copy_$", r"^aten::_to_copy$",
              r"^aten::to$", r"^aten::index_copy", r"^aten::fill_$", r"^aten::zero_$")
_ATTENTION = _rx(r"flash", r"attn", r"attention", r"fmha", r"paged", r"reshape_and_cache", r"kv_cache",
                 r"batchdecode", r"batchprefill", r"unified_kv", r"^reduce_segments$")
_SAMPLING = _rx(r"argmax", r"softmax", r"topk", r"top_k", r"top_p", r"sort", r"sampl", r"multinomial",
                r"exponential", r"gumbel", r"penalt", r"logit", r"bitonic", r"radix", r"cumsum", r"greedy",
                r"distribution", r"philox", r"uniform", r"_temperature_kernel")
# Tensor parallelism: NCCL's kernels and vLLM's own all-reduce on GPUs, the shared-memory
# collectives (vllm::all_reduce around _C::shm_allreduce) on the CPU engine.
_COMM = _rx(r"nccl", r"all_?reduce", r"all_?gather", r"reduce_?scatter", r"cross_device_reduce", r"all_to_all",
            r"shm_all", r"gloo")
# Split-K GEMMs end with a reduction kernel: same layer, same role.
_GEMM_AUX = _rx(r"splitkreduce", r"split_k_reduce", r"splitk_reduce")
_GEMM = _rx(r"gemm", r"gemv", r"nvjet", r"cutlass", r"cublas", r"xmma", r"machete", r"marlin", r"scaled_mm",
            r"matmul", r"s16816", r"wgmma", r"mul_mat", r"weight_packed_linear", r"onednn_mm", r"_mm_",
            r"^aten::(mm|addmm|bmm|linear|matmul)$", r"^triton_tem_", r"dequantize_mul_mat", r"ggml")
_ACT_QUANT = _rx(r"scaled_fp8_quant", r"fp8_quant", r"int8_quant", r"per_token_quant", r"quant_kernel",
                 r"dynamic_scaled", r"static_scaled")
_ELEMENTWISE = _rx(r"norm", r"rsqrt", r"silu", r"gelu", r"act_and_mul", r"rotary", r"rope", r"triton_poi",
                   r"triton_red", r"triton_per", r"elementwise", r"^aten::(add|mul|pow|mean|rsqrt|silu|sub|div|neg|"
                   r"cat|sigmoid|exp)_?$", r"vectorized", r"unrolled", r"embedding", r"index_select")


def kernel_class(name: str, memcpy_category: bool = False) -> str:
    """The class of one kernel or op. ``memcpy_category``: the profiler filed it
    as a memory copy or set (``gpu_memcpy`` / ``gpu_memset``)."""
    if memcpy_category or _MEMCPY.search(name):
        return "memcpy"
    for cls, rx in (("communication", _COMM), ("attention", _ATTENTION), ("sampling", _SAMPLING),
                    ("act_quant", _ACT_QUANT)):
        if rx.search(name):
            return cls
    if _GEMM_AUX.search(name) or _GEMM.search(name):
        return GEMM
    if _ELEMENTWISE.search(name):
        return "elementwise"
    return "other"


def is_gemm_aux(name: str) -> bool:
    """A kernel that finishes the GEMM before it (split-K reduction)."""
    return bool(_GEMM_AUX.search(name))


@dataclass(frozen=True)
class RoleAssignment:
    roles: list[str]  # one per GEMM kernel given, "" where unassigned
    period: int
    lm_head_phase: int | None  # index (mod period) of the lm_head among the main GEMMs
    note: str


def gemm_roles(names: list[str], durations: list[float], steps: list[int], layers: int) -> RoleAssignment:
    """Layer roles of a window's GEMM kernels, in execution order (``steps``: the
    step period each started in).

    A decode step runs ``4 * layers + 1`` GEMMs: q/k/v, o, gate/up and down per
    layer, then the lm_head. The window need not start at a step's first GEMM (a
    GPU runs behind the host's step marks), so the lm_head is found as the phase
    of that period with the longest mean duration (it reads the largest matrix,
    vocabulary x hidden) and the roles follow from it; split-K reductions take
    their GEMM's role. Roles stay unassigned (the GEMM class still counts every
    kernel) unless the window holds two periods or more, the median step runs
    exactly one period of GEMMs, and the lm_head phase stands out (1.5 x the next)."""
    period = len(LAYER_ROLES) * layers + 1
    main = [i for i, n in enumerate(names) if not is_gemm_aux(n)]
    none = [""] * len(names)
    if len(main) < 2 * period:
        return RoleAssignment(none, period, None,
                              f"{len(main)} GEMM kernels: fewer than two steps of {period} ({layers} layers x 4 + lm_head)")
    per_step = Counter(steps[i] for i in main)
    typical = sorted(per_step.values())[len(per_step) // 2]
    if typical != period:
        return RoleAssignment(none, period, None,
                              f"{typical} GEMM kernels per step, not {period} ({layers} layers x 4 + lm_head)")
    means = []
    for phase in range(period):
        picks = [durations[main[j]] for j in range(phase, len(main), period)]
        means.append(sum(picks) / len(picks))
    lm = max(range(period), key=means.__getitem__)
    runner_up = max(m for k, m in enumerate(means) if k != lm)
    if means[lm] < 1.5 * runner_up:
        return RoleAssignment(none, period, None, "no GEMM stands out as the lm_head (1.5 x the next)")
    def role(k: int) -> str:
        offset = (k - lm - 1) % period  # 0 = the first GEMM after an lm_head: layer 0's qkv
        return LM_HEAD if offset == period - 1 else LAYER_ROLES[offset % len(LAYER_ROLES)]

    role_of_main = {i: role(k) for k, i in enumerate(main)}
    # a reduction before the window's first main GEMM finishes the one before it
    roles, last = [], role(-1)
    for i in range(len(names)):
        last = role_of_main.get(i, last)
        roles.append(last)
    return RoleAssignment(roles, period, lm, "")
