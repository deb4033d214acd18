"""The step anatomy's pure parts with known answers: kernel names to classes,
GEMMs to their layer roles by execution order, a hand-made profiler trace to the
window's events and idle time, each class's bound computed by hand, and the
per-step table with its sum check."""

from __future__ import annotations

import pandas as pd
import pytest

from slmstudy.anatomy import bounds, classify, table, trace
from slmstudy import catalog
from slmstudy.roofline import Limits

# Names as the profiler records them: CUDA kernels of vLLM 0.26 on an H100 (cuBLASLt,
# CUTLASS, FlashAttention 3, Triton kernels fused by torch.compile, PyTorch's own) and
# torch ops of vLLM's CPU backend.
KNOWN = {
    "nvjet_tst_128x64_64x8_1x1_v_bz_coopA_TNT": "gemm",
    "void cutlass::device_kernel<vllm::cutlass_3x_gemm_sm90_fp8<cutlass::float_e4m3_t>>": "gemm",
    "void cublasLt::splitKreduce_kernel<32, 16, int, float, __nv_bfloat16>": "gemm",
    "void marlin::Marlin<256, 1, 8, 8, 4, 8>(int4 const*)": "gemm",
    "void machete::MacheteKernelTemplate<cutlass::bfloat16_t>": "gemm",
    "void flash::FlashAttnFwdSm90<cutlass::bfloat16_t, 128>": "attention",
    "flash_fwd_splitkv_kernel": "attention",
    "void vllm::reshape_and_cache_flash_kernel<__nv_bfloat16>": "attention",
    "triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_0": "elementwise",
    "triton_poi_fused_mul_silu_slice_1": "elementwise",
    "void vllm::rotary_embedding_kernel<c10::BFloat16, true>": "elementwise",
    "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, float>": "sampling",
    "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::ArgMaxOps<float>>>": "sampling",
    "void at::native::(anonymous namespace)::distribution_elementwise_grid_stride_kernel<float, 4>": "sampling",
    "void vllm::dynamic_scaled_fp8_quant_kernel<c10::BFloat16>": "act_quant",
    # vLLM 0.26's GPU model runner on the H100 (names from the 8087ffd sitting's traces)
    "nvjet_sm90_tst_64x8_64x16_4x1_v_bz_splitK_TNT": "gemm",
    "_temperature_kernel": "sampling",
    "kernel_unified_attention_3d": "attention",  # fp32: vLLM's Triton attention, split in segments
    "reduce_segments": "attention",               # ... and the segments' reduction
    "_gather_block_tables_kernel": "other",       # input preparation: no class of its own
    # tensor parallelism: NCCL, vLLM's custom all-reduce, the CPU engine's shared-memory collectives
    "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)": "communication",
    "void vllm::cross_device_reduce_1stage<__nv_bfloat16, 2>": "communication",
    "vllm::all_reduce": "communication",
    "_C::shm_allreduce": "communication",
    "_gumbel_sample_kernel": "sampling",
    # fp32 on the H100 (cuBLAS's xmma GEMMs; the split-K pass is a reduction of the GEMM before it)
    "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize64x64x8_stage3_warpsize1x4x1_ffma_aligna4_alignc4_execute_kernel__5x_cublas":
        "gemm",
    # fp8 on the H100: torch.compile fuses the per-token activation quantisation (|x| max, scale,
    # clamp, cast) with the norm before it and names the kernel after cutlass_scaled_mm too
    "triton_red_fused__to_copy_abs_clamp_cutlass_scaled_mm_div_fused_add_rms_norm_max_mul_reciprocal_unsqueeze_1":
        "act_quant",
    "triton_red_fused__to_copy_abs_clamp_cutlass_scaled_mm_div_max_mul_reciprocal_silu_slice_unsqueeze_2": "act_quant",
    "void cutlass::device_kernel<flash::FlashAttnFwdCombine<cute::tuple<cute::C<8>>>>": "attention",
    "triton_red_fused_fused_add_rms_norm_2": "elementwise",
    "void at::native::direct_copy_kernel_cuda": "memcpy",
    "_C::weight_packed_linear": "gemm",
    "_C::onednn_mm": "gemm",
    "vllm::unified_attention_with_output": "attention",
    "vllm::unified_kv_cache_update": "attention",
    "_C::fused_gumbel_argmax": "sampling",
    "aten::rsqrt": "elementwise",
    "aten::div_": "elementwise",
    "aten::to": "memcpy",
    "aten::slice": "other",
    "cudaGraphLaunch_whatever_unknown": "other",
}


@pytest.mark.parametrize("name,cls", KNOWN.items())
def test_known_kernel_names_get_their_class(name, cls):
    assert classify.kernel_class(name) == cls


def test_split_k_passes_finish_their_gemm():
    assert classify.is_gemm_aux("void cublasLt::splitKreduce_kernel<32, 16, int, float, __nv_bfloat16>")
    assert classify.is_gemm_aux(
        "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize64x64x8_stage3_warpsize1x4x1_ffma_aligna4_alignc4_"
        "execute_split_k_kernel__5x_cublas")
    assert not classify.is_gemm_aux("nvjet_sm90_tst_64x8_64x16_4x1_v_bz_splitK_TNT")  # the split GEMM itself


def test_the_profilers_copy_category_wins_over_the_name():
    assert classify.kernel_class("Memcpy DtoH (Device -> Pinned)", memcpy_category=True) == "memcpy"
    assert classify.kernel_class("some_kernel", memcpy_category=True) == "memcpy"


# one step of a 2-layer model: qkv, o, gate_up (+ its split-K reduction), down per layer, then the lm_head
STEP = [("gemm_qkv", 3.0), ("gemm_o", 1.0), ("gemm_gu", 5.0), ("splitKreduce_kernel", 0.5), ("gemm_down", 2.5)] * 2 \
    + [("gemm_lm", 20.0)]
ROLES = ["qkv", "o", "gate_up", "gate_up", "down"] * 2 + ["lm_head"]


def _window(start: int, steps: int):
    """``steps`` steps of STEP, starting ``start`` kernels into the first (a GPU runs
    behind the host's step marks, so a window begins mid-step)."""
    seq = (STEP * (steps + 1))[start:start + steps * len(STEP)]
    roles = (ROLES * (steps + 1))[start:start + steps * len(ROLES)]
    step_of = [(start + i) // len(STEP) for i in range(len(seq))]
    return [n for n, _ in seq], [d for _, d in seq], step_of, roles


def test_gemm_roles_follow_from_the_lm_head_whatever_the_window_starts_on():
    for start in (0, 3, 10):
        names, durs, steps, expected = _window(start, 3)
        got = classify.gemm_roles(names, durs, steps, layers=2)
        assert got.note == "" and got.period == 9
        assert got.roles == expected, start


def test_gemm_roles_follow_the_sequence_when_the_gpu_runs_behind_the_step_marks():
    # On the H100 a step's kernels start in the host's next step period by a varying
    # amount: per-step counts scatter (DeepSeek batch 1: 82 to 163 around 113) while the
    # sequence is exact. Four steps of 11 kernels (9 GEMMs) split 6 / 14 / 9 / 15.
    names, durs, _, expected = _window(0, 4)
    bounds_at = [0, 6, 20, 29, 44]
    steps = [k for k in range(4) for _ in range(bounds_at[k], bounds_at[k + 1])]
    got = classify.gemm_roles(names, durs, steps, layers=2)
    assert got.note == "" and got.roles == expected


def test_gemm_roles_stay_unassigned_when_the_gemms_do_not_come_one_period_a_step():
    names, durs, steps, _ = _window(0, 3)
    # 13 expected a step (3 layers), 9 present: 27 over 3 steps is within a period of 39,
    # but the names do not repeat every 13 kernels
    got = classify.gemm_roles(names, durs, steps, layers=3)
    assert set(got.roles) == {""} and "do not repeat every 13 kernels" in got.note
    names6, durs6, steps6, _ = _window(0, 6)
    got = classify.gemm_roles(names6, durs6, steps6, layers=4)  # 17 a step: 54 is not 102 within 17
    assert set(got.roles) == {""} and "9.0 GEMM kernels per step over 6 steps, not 17" in got.note
    flat = [1.0] * len(durs)  # no kernel stands out as the lm_head
    got = classify.gemm_roles(names, flat, steps, layers=2)
    assert set(got.roles) == {""} and "lm_head" in got.note
    got = classify.gemm_roles(names[:12], durs[:12], steps[:12], layers=2)
    assert set(got.roles) == {""} and "fewer than two steps" in got.note


def _x(name, ts, dur, cat="kernel", tid=1):
    return {"ph": "X", "name": name, "ts": ts, "dur": dur, "cat": cat, "tid": tid}


def test_gpu_trace_window_clips_events_and_counts_overlaps_once():
    events = [
        _x("slmstudy_step#0", 1000, 5, "user_annotation"), _x("slmstudy_step#1", 1100, 5, "user_annotation"),
        _x("slmstudy_step#2", 1200, 5, "user_annotation"),
        _x("early", 900, 50), _x("straddles_start", 990, 20),  # before the window / 10 us inside
        _x("a", 1010, 30), _x("b_other_stream", 1030, 30),  # [1010, 1060): 50 us busy
        _x("Memcpy HtoD", 1120, 10, "gpu_memcpy"),
        _x("tail", 1150, 80),  # clipped to [1150, 1200)
        _x("aten::mm", 1000, 300, "cpu_op"),  # a CPU op: not a device event when the trace has kernels
        # CUDA's copies of the step marks, spanning each step's GPU work: not steps (the H100
        # sitting of 8087ffd counted them and read 32 steps as 65)
        _x("slmstudy_step#0", 1040, 60, "gpu_user_annotation"), _x("slmstudy_step#1", 1140, 60, "gpu_user_annotation"),
        _x("slmstudy_step#2", 1240, 60, "gpu_user_annotation"),
    ]
    w, df = trace.device_events({"traceEvents": events})
    assert (w.device, w.steps, w.wall_us) == ("cuda", 2, 200.0)
    got = df.set_index("name")
    assert list(df["name"]) == ["straddles_start", "a", "b_other_stream", "Memcpy HtoD", "tail"]
    assert got.loc["straddles_start", "dur_us"] == 10 and got.loc["tail", "dur_us"] == 50
    assert got.loc["Memcpy HtoD", "memcpy"] and got.loc["tail", "step"] == 1 and got.loc["a", "step"] == 0
    # busy: [1000,1010) + [1010,1060) + [1120,1130) + [1150,1200) = 10 + 50 + 10 + 50
    assert trace.busy_us(df) == 120.0


def test_cpu_trace_keeps_the_engine_threads_top_level_ops():
    events = [
        _x("slmstudy_step#0", 0, 90, "user_annotation", 7), _x("slmstudy_step#1", 100, 90, "user_annotation", 7),
        _x("aten::linear", 10, 40, "cpu_op", 7), _x("aten::addmm", 15, 30, "cpu_op", 7),  # nested: part of linear
        _x("aten::add", 60, 10, "cpu_op", 7),
        _x("aten::mul", 20, 50, "cpu_op", 9),  # another thread
    ]
    w, df = trace.device_events({"traceEvents": events})
    assert w.device == "cpu" and list(df["name"]) == ["aten::linear", "aten::add"]
    assert trace.busy_us(df) == 50.0


def test_a_trace_without_two_step_marks_is_refused():
    with pytest.raises(ValueError, match="needs two or more"):
        trace.device_events({"traceEvents": [_x("slmstudy_step#0", 0, 5, "user_annotation")]})


def test_class_bounds_by_hand_for_deepseek_bf16():
    cfg = catalog.model("deepseek-r1-distill-qwen-1.5b").hf_config()
    lim = Limits(bandwidth_bytes_s=2e12, peak_flops=500e12)
    b = bounds.class_bounds(cfg, "bf16", batch=1, context=192, limits=lim)
    # lm_head: 151936 x 1536 bf16 weights read once, one row in and out
    assert b["gemm:lm_head"] == pytest.approx((151936 * 1536 * 2 + (1536 + 151936) * 2) / 2e12)
    # qkv: 28 layers of 1536 -> 1536 + 2 x 256 (2 KV heads of 128)
    assert b["gemm:qkv"] == pytest.approx(28 * (1536 * 2048 * 2 + (1536 + 2048) * 2) / 2e12)
    # attention: the KV cache up to 193 positions: 28 layers x K and V x 256 x 2 bytes each
    assert b["attention"] == pytest.approx(193 * 28 * 2 * 256 * 2 / 2e12)
    assert b["gemm"] == pytest.approx(sum(b[f"gemm:{r}"] for r in classify.ROLES))
    # at batch 4096 the lm_head is bound by arithmetic: 2 x 4096 x 151936 x 1536 FLOPs
    big = bounds.class_bounds(cfg, "bf16", batch=4096, context=192, limits=lim)
    assert big["gemm:lm_head"] == pytest.approx(2 * 4096 * 151936 * 1536 / 500e12)


def test_four_bit_weights_cost_half_a_byte_plus_a_bf16_scale_per_group_of_128():
    cfg = catalog.model("deepseek-r1-distill-qwen-1.5b").hf_config()
    assert bounds.projection_bytes_per_weight(cfg, "int4") == pytest.approx(0.5 + 2 / 128, rel=1e-5)
    # AWQ adds a 4-bit zero point per group
    assert bounds.projection_bytes_per_weight(cfg, "awq") == pytest.approx(0.5 + 2 / 128 + 0.5 / 128, rel=1e-5)
    assert bounds.projection_bytes_per_weight(cfg, "bf16") == 2


def _events(rows):
    return pd.DataFrame(rows, columns=["name", "memcpy", "start_us", "dur_us", "step"])


def test_window_table_and_sum_check_by_hand():
    # two steps of 100 us: a GEMM of 40 us and an attention kernel of 10 us each, the rest idle
    ev = _events([("nvjet_a", False, 0, 40, 0), ("flash_fwd", False, 50, 10, 0),
                  ("nvjet_a", False, 100, 40, 1), ("flash_fwd", False, 150, 10, 1)])
    ev, _ = table.classify_events(ev, layers=2)
    bounds_s = {"gemm": 20e-6, "attention": 1e-6}
    rows = table.window_rows(ev, steps=2, wall_us=200, bounds_s=bounds_s, measured_step_s=100e-6)
    got = rows.set_index("part")
    assert got.loc["gemm", "ms_per_step"] == pytest.approx(0.040)
    assert got.loc["attention", "ms_per_step"] == pytest.approx(0.010)
    assert got.loc["idle", "ms_per_step"] == pytest.approx(0.050)
    assert got.loc["gemm", "above_bound_ms"] == pytest.approx(0.020)
    assert got.loc["gemm", "share"] == pytest.approx(0.4)
    s = table.window_summary(rows, 2, 200, measured_step_s=100e-6, roofline_step_s=25e-6, tolerance_pct=5)
    assert s["sum_ms"] == pytest.approx(0.1) and s["sum_check"] == "ok" and s["sum_diff_pct"] == pytest.approx(0)
    assert s["gap_ms"] == pytest.approx(0.075) and s["achieved_fraction"] == pytest.approx(0.25)
    assert s["above_bound_ms"] == pytest.approx(0.020 + 0.009)
    # the unprofiled runs took 90 us a step: the anatomy overstates it by 11%
    off = table.window_summary(rows, 2, 200, measured_step_s=90e-6, roofline_step_s=25e-6, tolerance_pct=5)
    assert off["sum_check"] == "off" and off["sum_diff_pct"] == pytest.approx(100 * (0.1 - 0.09) / 0.09)
    # ... the profiler's cost, all of it idle: kernels 50 us of the measured 90, so the host
    # keeps the device waiting 40 us (44%) of the measured step, not the profiled 50 us (56%)
    assert off["profiler_cost_pct"] == pytest.approx(100 * (100 - 90) / 90)
    assert off["host_ms"] == pytest.approx(0.040) and off["host_share"] == pytest.approx(0.040 / 0.090)
    assert off["idle_share"] == pytest.approx(0.050 / 0.090)
    # kernels longer than the measured step: no estimate
    short = table.window_summary(rows, 2, 200, measured_step_s=40e-6, roofline_step_s=25e-6, tolerance_pct=5)
    assert short["host_ms"] != short["host_ms"]
    assert off["profiler_cost_basis"] == "sweep" and off["unprofiled_step_ms"] != off["unprofiled_step_ms"]
    # the same batch's unprofiled steps took 80 us: the profiler's own cost is 100/80 - 1 = +25%,
    # and the anatomy's batch ran 11% faster than the sweep's runs (80 vs 90 us), apart from it
    own = table.window_summary(rows, 2, 200, measured_step_s=90e-6, roofline_step_s=25e-6, tolerance_pct=5,
                               unprofiled_step_s=80e-6)
    assert own["profiler_cost_basis"] == "unprofiled steps" and own["profiler_cost_pct"] == pytest.approx(25)
    assert own["window_vs_sweep_pct"] == pytest.approx(100 * (80 - 90) / 90)
    assert own["host_ms"] == pytest.approx(0.040)  # still the measured step's: the notebooks explain the sweep


def test_the_verdict_reads_the_measured_steps_idle_not_the_profiled_one():
    from slmstudy.experiments import anatomy_report

    # H100, 6690548, Llama-3.2-1B batch 1 (rounded): measured 1.55 ms a step, kernels 1.39 ms,
    # the profiled window idles 1.28 ms a step (its steps took 2.67 ms)
    r = pd.Series({"idle_share": 1.28 / 1.55, "host_share": (1.55 - 1.39) / 1.55, "classes_ms": 1.39,
                   "class_bounds_ms": 1.0})
    assert anatomy_report.host_share(r) == pytest.approx(0.103, abs=1e-3)
    assert anatomy_report.limit_of(r) == "near the hardware bound"
    assert anatomy_report.limit_of(r.drop("host_share")) == "host-bound"  # the profiled idle would say so
    r["host_share"] = float("nan")  # no estimate: the profiled idle is what there is
    assert anatomy_report.limit_of(r) == "host-bound"


def test_the_class_table_leaves_out_classes_no_window_has():
    from slmstudy.experiments import anatomy_report

    rows = []
    for batch, gemm, idle in ((1, 1.5, 0.9), (256, 6.0, 0.2)):
        for part in (*classify.CLASSES, "idle", "gemm:qkv"):
            ms = {"gemm": gemm, "attention": 0.5, "idle": idle, "gemm:qkv": 0.3}.get(part, 0.0)
            rows.append({"model": "m", "precision": "bf16", "batch": batch, "part": part, "ms_per_step": ms})
    t = anatomy_report.class_table(pd.DataFrame(rows), keys=["model", "batch"])
    assert list(t.columns) == ["model", "batch", "gemm", "attention", "idle"]
    assert t.set_index("batch").loc[256, "gemm"] == 6.0 and t.set_index("batch").loc[1, "idle"] == 0.9


def test_the_comparison_splits_the_measured_difference():
    from slmstudy.experiments import anatomy_report

    # two models at one batch: kernels 1.0 / 1.6 ms, measured 1.2 / 2.0 ms, so the host keeps the
    # device waiting 0.2 / 0.4 ms; the profiled windows idle 0.9 / 0.5 ms (the profiler's cost)
    summary = pd.DataFrame([
        {"model": m, "precision": "bf16", "batch": 1, "measured_step_ms": meas, "classes_ms": k,
         "class_bounds_ms": 1.0, "idle_ms": pidle, "idle_share": pidle / meas, "host_ms": meas - k,
         "host_share": (meas - k) / meas, "profiler_cost_pct": 100 * (k + pidle - meas) / meas, "sum_ms": k + pidle,
         "sum_diff_pct": 100 * (k + pidle - meas) / meas, "sum_check": "off", "roofline_bound_ms": 0.5,
         "achieved_fraction": 0.5 / meas}
        for m, k, meas, pidle in (("a", 1.0, 1.2, 0.9), ("b", 1.6, 2.0, 0.5))])
    parts = pd.DataFrame([{"model": m, "precision": "bf16", "batch": 1, "part": part, "ms_per_step": ms}
                          for m, g, idle in (("a", 1.0, 0.9), ("b", 1.6, 0.5))
                          for part, ms in (("gemm", g), ("idle", idle))])
    text = anatomy_report.explain(summary, parts, by="model")
    # 2.0 - 1.2 = 0.8 ms: GEMMs +0.6, waiting +0.2 (not the profiled -0.4)
    assert "most of the difference is the GEMMs (+0.60 ms of +0.80 ms)" in text
