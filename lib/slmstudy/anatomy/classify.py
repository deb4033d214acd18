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

import functools
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
# Split-K GEMMs end with a reduction kernel: same layer, same role (cuBLASLt's
# splitKreduce after nvjet; cuBLAS's fp32 xmma GEMMs end with ..._execute_split_k_kernel).
_GEMM_AUX = _rx(r"splitkreduce", r"split_k_reduce", r"splitk_reduce", r"execute_split_k_kernel")
# torch.compile's fused point-wise / reduction kernels (its GEMM templates are triton_tem_).
# They are named after every op fused into them, sorted, a GEMM's input preparation
# included: fp8's per-token activation quantisation fused with the norm before it reads
# triton_red_fused__to_copy_abs_clamp_cutlass_scaled_mm_div_fused_add_rms_norm_max_..., a
# reduction (|x| max), not a GEMM; abs and clamp together are its quantisation.
_INDUCTOR_FUSED = _rx(r"^triton_(poi|red|per)_")
_FUSED_QUANT = _rx(r"^triton_(poi|red|per)_fused\w*_abs_(\w*_)?clamp_")
_GEMM = _rx(r"gemm", r"gemv", r"nvjet", r"cutlass", r"cublas", r"xmma", r"machete", r"marlin", r"scaled_mm",
            r"matmul", r"s16816", r"wgmma", r"mul_mat", r"weight_packed_linear", r"onednn_mm", r"_mm_",
            r"^aten::(mm|addmm|bmm|linear|matmul)$", r"^triton_tem_", r"dequantize_mul_mat", r"ggml")
_ACT_QUANT = _rx(r"scaled_fp8_quant", r"fp8_quant", r"int8_quant", r"per_token_quant", r"quant_kernel",
                 r"dynamic_scaled", r"static_scaled")
_ELEMENTWISE = _rx(r"norm", r"rsqrt", r"silu", r"gelu", r"act_and_mul", r"rotary", r"rope", r"triton_poi",
                   r"triton_red", r"triton_per", r"elementwise", r"^aten::(add|mul|pow|mean|rsqrt|silu|sub|div|neg|"
                   r"cat|sigmoid|exp)_?$", r"vectorized", r"unrolled", r"embedding", r"index_select")


# A window repeats a few hundred names tens of thousands of times (02's 16 windows on
# the H100: 196,000 kernels, 28 s of regular expressions in the notebook): each name
# is classified once.
@functools.lru_cache(maxsize=1 << 16)
def kernel_class(name: str, memcpy_category: bool = False) -> str:
    """The class of one kernel or op. ``memcpy_category``: the profiler filed it
    as a memory copy or set (``gpu_memcpy`` / ``gpu_memset``)."""
    if memcpy_category or _MEMCPY.search(name):
        return "memcpy"
    fused = bool(_INDUCTOR_FUSED.search(name))
    if fused and _FUSED_QUANT.search(name):
        return "act_quant"
    for cls, rx in (("communication", _COMM), ("attention", _ATTENTION), ("sampling", _SAMPLING),
                    ("act_quant", _ACT_QUANT)):
        if rx.search(name):
            return cls
    if not fused and (_GEMM_AUX.search(name) or _GEMM.search(name)):
        return GEMM
    if _ELEMENTWISE.search(name):
        return "elementwise"
    return "other"


@functools.lru_cache(maxsize=1 << 16)
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
    kernel) unless the window holds two periods or more, its GEMMs come one period
    a step, and the lm_head phase stands out (1.5 x the next).

    One period a step: the median step holds exactly one period (the host's step
    marks and the kernels line up, as on the CPU engine), or the window holds its
    steps' worth within one period and the kernels' names repeat every period (95%
    of them). The second is what a GPU shows: the kernels of one step start in the
    host's next step period by a varying amount, so per-step counts scatter (H100,
    DeepSeek batch 1: 82 to 163 a step around 113) while the sequence stays exact."""
    period = len(LAYER_ROLES) * layers + 1
    main = [i for i, n in enumerate(names) if not is_gemm_aux(n)]
    none = [""] * len(names)
    if len(main) < 2 * period:
        return RoleAssignment(none, period, None,
                              f"{len(main)} GEMM kernels: fewer than two steps of {period} ({layers} layers x 4 + lm_head)")
    per_step = Counter(steps[i] for i in main)
    typical = sorted(per_step.values())[len(per_step) // 2]
    if typical != period:
        n_steps = len(per_step)
        if abs(len(main) - n_steps * period) >= period:
            return RoleAssignment(none, period, None,
                                  f"{len(main) / n_steps:.1f} GEMM kernels per step over {n_steps} steps, "
                                  f"not {period} ({layers} layers x 4 + lm_head)")
        same = sum(names[main[j]] == names[main[j + period]] for j in range(len(main) - period))
        if same < 0.95 * (len(main) - period):
            return RoleAssignment(none, period, None,
                                  f"GEMM kernel names do not repeat every {period} kernels ({layers} layers x 4 + "
                                  f"lm_head): {same / (len(main) - period):.0%} do; {typical} in the median step")
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
