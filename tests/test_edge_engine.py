"""The edge engine: llama.cpp (xllamacpp) on CPU cores, one process per
configuration. A real run of the tiny model's Q4_K_M file is timed token by
token from the stream and agrees with llama.cpp's own counts; a configuration
that cannot run ends as a recorded failure naming its cause, with no process
left (parameter checks: tests/test_edge_study.py)."""

from __future__ import annotations

import json
import os

import pytest

from slmstudy.edge.spec import EdgeJob, EdgePoint, EdgeSpec
from slmstudy.engine import journal, procs

IN, OUT, REPS, WARMUP = 16, 40, 2, 1  # OUT above the warmup's cap (worker.WARMUP_OUTPUT_LEN = 32)


def _job(model: str = "tiny-qwen2", file_type: str = "Q4_K_M", threads: int = 1, **point) -> EdgeJob:
    return EdgeJob(engine=EdgeSpec(model=model, file_type=file_type, threads=threads),
                   point=EdgePoint(**{"input_len": IN, "output_len": OUT, "repetitions": REPS, "warmup": WARMUP,
                                      **point}))


# --------------------------------------------------------------------------- real engine

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("xllamacpp")
    from slmstudy.edge.runner import run_edge_job

    out = tmp_path_factory.mktemp("edge") / "tiny"
    groups = []
    real_run_logged = procs.run_logged

    def spy(*args, **kwargs):  # remember the worker's process group
        on_start = kwargs.pop("on_start", None)

        def both(group):
            groups.append(group.pgid)
            if on_start:
                on_start(group)

        return real_run_logged(*args, on_start=both, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(procs, "run_logged", spy)
    try:
        result = run_edge_job(_job(), out)
    finally:
        mp.undo()
    return result, out, journal.read(out / "events.jsonl"), groups


@pytest.mark.engine
@pytest.mark.timeout(900)
def test_tiny_q4_k_m_runs_token_by_token(tiny_run):
    result, out, records, groups = tiny_run
    assert result.ok, (result.error, result.root_cause, (out / "engine.log").read_text()[-3000:])
    assert not any(r["type"] in ("point_error", "fatal") for r in records)
    assert groups and not procs.group_alive(groups[0])
    runs = [r for r in records if r["type"] == "run"]
    assert [(r["warmup"], r["rep"]) for r in runs] == [(True, 0), (False, 0), (False, 1)]
    for r in runs:
        times = r["token_times"]
        n = 32 if r["warmup"] else OUT  # a warmup run is capped: it only warms the file and caches
        assert r["output_len"] == n and len(times) == n
        # Non-decreasing: a token llama-server held back (its text an incomplete
        # UTF-8 sequence) arrives with the next one, at the same moment.
        assert all(b >= a for a, b in zip(times, times[1:]))
        assert times[-1] > times[0]
        assert r["t_submit"] < r["t_first_token"] == times[0] <= r["t_done"]
        # llama.cpp's own counts: the prompt is the token-ID list as given (no BOS
        # is added to a list of IDs, and cache_prompt is off, so all 16 are
        # evaluated); predicted_n counts every generated token, the first included
        # (it is sampled from the prompt's logits, so its time is in prompt_ms).
        assert r["timings"]["prompt_n"] == IN and r["n_prompt_tokens"] == IN
        assert r["timings"]["predicted_n"] == n and r["n_generated"] == n
        assert r["timings"]["cache_n"] == 0
        assert r["finish_reason"] == "length"
        assert r["rss_peak_bytes"] >= 10 * 2**20
    engine_rec = next(r for r in records if r["type"] == "engine")
    assert engine_rec["n_threads"] == engine_rec["n_threads_batch"] == 1
    assert engine_rec["llama_log"]["threadpool_n_threads"] == 1
    assert engine_rec["model_meta"]["n_params"] > 0 and engine_rec["rss_after_load_bytes"] > 0
    config = next(r for r in records if r["type"] == "config")
    assert config["gguf"]["size_bytes"] == os.stat(config["gguf"]["path"]).st_size
    assert config["gguf"]["tensor_types"] and config["gguf"]["bits_per_weight"] > 4


@pytest.mark.engine
@pytest.mark.timeout(900)
def test_telemetry_covers_every_run_phase(tiny_run):
    result, out, records, _ = tiny_run
    assert result.ok
    trace = [json.loads(line) for line in (out / "telemetry.jsonl").read_text().splitlines()]
    assert trace and {"cpu_pct", "proc_cpu_pct", "proc_rss_mib"} <= set(trace[-1])
    phases = [r for r in records if r["type"] == "phase" and r["name"] == "run"]
    assert len(phases) == REPS + WARMUP and all(p["ok"] for p in phases)
    assert {(p["warmup"], p["rep"]) for p in phases} == {(True, 0), (False, 0), (False, 1)}
    for p in phases:
        # The sampler ran from before the model was loaded until after the last run.
        assert trace[0]["t"] <= p["t0"] and trace[-1]["t"] >= p["t1"]


@pytest.mark.engine
@pytest.mark.timeout(300)
def test_unknown_model_is_a_recorded_failure(tmp_path):
    from slmstudy.edge.runner import run_edge_job

    out = tmp_path / "nope"
    result = run_edge_job(_job(model="no-such-model"), out)
    assert not result.ok and result.returncode == 1
    assert "no-such-model" in result.root_cause and result.root_cause.startswith("CatalogError"), result.root_cause
    assert not (out / "running.json").exists()
    assert any(r["type"] == "fatal" for r in journal.read(out / "events.jsonl"))


@pytest.mark.engine
@pytest.mark.timeout(600)
def test_file_that_cannot_load_names_llama_cpp_error(tmp_path, monkeypatch):
    pytest.importorskip("xllamacpp")
    from slmstudy.edge.runner import run_edge_job
    from slmstudy.gguf_files import build

    monkeypatch.setenv("SLMSTUDY_CACHE_DIR", str(tmp_path / "cache"))  # the worker inherits it
    f = build("tiny-qwen2", "Q8_0")
    with open(f.path, "r+b") as fh:  # a download cut short: the tensor data ends early
        fh.truncate(f.size_bytes // 2)
    out = tmp_path / "cut"
    result = run_edge_job(_job(file_type="Q8_0"), out)
    assert not result.ok and result.returncode == 1
    # The binding raises only "Failed to init server, please check the input
    # params."; the cause is llama.cpp's own error line in the log.
    assert result.error.startswith("RuntimeError: Failed to init server")
    assert result.root_cause.startswith("llama.cpp: "), result.root_cause
    assert "error loading model" in result.root_cause
    assert result.leftover_processes_killed == 0
    records = journal.read(out / "events.jsonl")
    assert not any(r["type"] == "engine" for r in records)
    assert next(r for r in records if r["type"] == "phase" and r["name"] == "engine_start")["ok"] is False


def test_stream_parsing_counts_held_back_tokens():
    from slmstudy.edge.worker import check_run, parse_stream

    def chunk(n, text="x", finish=None, usage=None):
        c = {"choices": [{"text": text, "finish_reason": finish}], "timings": {"prompt_n": 4, "predicted_n": n,
                                                                                 "predicted_ms": n * 2.0}}
        if usage:
            c["usage"] = usage
        return json.dumps(c)

    # token 2's text was an incomplete UTF-8 sequence: it came with token 3
    items = [(1.0, chunk(1)), (2.0, chunk(3)), (3.0, chunk(4)),
             (3.0, chunk(4, "", "length", {"prompt_tokens": 4, "completion_tokens": 4}))]
    p = parse_stream(items)
    assert p["token_times"] == [1.0, 2.0, 2.0, 3.0]
    assert p["llama_predicted_ms_at_token"] == [2.0, 6.0, 6.0, 8.0]
    assert p["finish_reason"] == "length" and p["error"] is None and p["chunks"] == 4
    short = {"error": None, "n_token_times": 3, "n_generated": 3, "timings": {"predicted_n": 3},
             "finish_reason": "length", "n_prompt_tokens": 4}
    assert check_run(short, 4, 4) == ("expected exactly 4 output tokens, got: 3 tokens streamed; llama.cpp counted "
                                      "3 generated tokens; timings.predicted_n = 3 (finish_reason 'length')")
    err = parse_stream([(1.0, json.dumps({"error": {"code": 400, "message": "the request exceeds the context"}}))])
    assert err["error"] == "the request exceeds the context"


def test_failure_causes():
    from slmstudy.edge.runner import explain_failure

    log = ("0.00.003.814 I srv    load_model: loading model '/x/model.gguf'\n"
           "0.00.073.152 E llama_model_load: error loading model: tensor 'output.weight' data is not within the "
           "file bounds, model is corrupted or incomplete\n"
           "0.00.137.809 E cmn  common_init_: failed to load model '/x/model.gguf'\n")
    wrapper = "RuntimeError: Failed to init server, please check the input params."
    assert explain_failure(None, 1, log, wrapper) == (
        wrapper, "llama.cpp: llama_model_load: error loading model: tensor 'output.weight' data is not within the "
                 "file bounds, model is corrupted or incomplete")
    own = "CatalogError: unknown model 'x'; known: a, b"
    assert explain_failure(None, 1, log, own) == (own, own)
    assert explain_failure(None, -9, "", None) == ("worker killed by signal 9 (SIGKILL)",
                                                   "worker killed by signal 9 (SIGKILL)")
    assert explain_failure(None, -9, log, None)[1].startswith("llama.cpp: llama_model_load: error loading model")
    late = "TimeoutError: llama.cpp did not load the model within 300 s"
    assert explain_failure(late, -15, log, None) == (late, late)
    assert explain_failure(None, 0, log, None) == (None, None)


def test_load_timeout_counts_from_the_gguf_build():
    from slmstudy.edge.runner import _load_overdue

    built = {"type": "phase", "name": "gguf_build", "ok": True, "t0": 0.0, "t1": 100.0}
    assert not _load_overdue([], 1000.0, 60)  # still building: the job's own time limit applies
    assert not _load_overdue([built], 150.0, 60)
    assert _load_overdue([built], 161.0, 60)
    assert not _load_overdue([built, {"type": "engine"}], 1000.0, 60)


def test_llama_log_facts():
    from slmstudy.edge.worker import log_facts

    log = ("0.00.001.701 I cmn  common_param: system_info: n_threads = 2 (n_threads_batch = 2) / 2 | CPU : AVX2 = 1 |\n"
           "0.00.002.128 I srv          init: using 1 threads for HTTP server\n"
           "0.00.330.886 I load_tensors: loading model tensors, this can take a while... (load_mode = mmap)\n"
           "0.00.421.473 I load_tensors:   CPU_Mapped model buffer size =  1064.07 MiB\n"
           "0.00.421.516 I load_tensors:   CPU_REPACK model buffer size =   812.25 MiB\n"
           "0.00.432.636 I llama_kv_cache:        CPU KV buffer size =    28.00 MiB\n"
           "0.00.433.575 I cmn          init: llama threadpool init, n_threads = 2\n"
           "0.00.445.223 I srv          init: model loaded\n"
           "0.00.673.221 I sched_reserve:        CPU compute buffer size =     5.27 MiB\n")
    assert log_facts(log) == {
        "system_info": "n_threads = 2 (n_threads_batch = 2) / 2 | CPU : AVX2 = 1 |", "http_threads": 1,
        "load_mode": "mmap", "threadpool_n_threads": 2,
        "buffers_mib": {"CPU_Mapped model": 1064.07, "CPU_REPACK model": 812.25, "CPU KV": 28.0}}
