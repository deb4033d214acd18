"""Serving-mode pieces that need no server: the generated tokenizer's exact counts,
Poisson arrivals, per-level aggregates and goodput, port checks on real sockets,
and the client's view of a port nobody listens on."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import time

import numpy as np
import pytest
from scipy import stats as st

from slmstudy import catalog
from slmstudy.serving import load, tokenizer
from slmstudy.serving.client import RequestRecord, StreamingClient
from slmstudy.serving.server import PortInUse, VllmServer, check_port_free, free_port


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMSTUDY_CACHE_DIR", str(tmp_path / "cache"))


# ----------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("model", ["tiny-qwen2", "tiny-llama3"])
def test_vocabulary_matches_config(model):
    config = catalog.model(model).hf_config()
    vocab = tokenizer.vocabulary(config)
    assert len(vocab) == config["vocab_size"]
    assert sorted(vocab.values()) == list(range(config["vocab_size"]))
    assert vocab["w1000"] == 1000 and vocab["<unk>"] == 0
    eos = config["eos_token_id"] if isinstance(config["eos_token_id"], list) else [config["eos_token_id"]]
    special = tokenizer.special_tokens(config)
    assert all(i in special for i in [config["bos_token_id"], *eos])


def test_served_model_for_dummy_weights(tmp_path):
    served = tokenizer.prepare("tiny-qwen2", "bf16", "dummy")
    assert served.exact_counts and served.tokenizer == tokenizer.GENERATED
    assert served.source.load_format == "dummy"
    folder = tokenizer.tokenizer_folder("tiny-qwen2", catalog.model("tiny-qwen2").hf_config())
    assert str(folder) == served.tokenizer_path
    assert {p.name for p in folder.iterdir()} == {"tokenizer.json", "tokenizer_config.json"}
    # the model folder is modeldir's, untouched: offline runs see no tokenizer
    assert not any((tmp_path / "cache").rglob("models/*/tokenizer*.json"))


def test_prompt_text_is_deterministic_and_distinct():
    a = tokenizer.prompt_text(64, seed=0, index=3)
    assert a == tokenizer.prompt_text(64, seed=0, index=3)
    assert a != tokenizer.prompt_text(64, seed=0, index=4)
    assert a != tokenizer.prompt_text(64, seed=1, index=3)
    assert len(a.split(" ")) == 64
    with pytest.raises(ValueError):
        tokenizer.prompt_text(0, 0, 0)


@pytest.mark.parametrize("model", ["tiny-qwen2", "tiny-llama3"])
def test_exact_counts_and_round_trip(model):
    from tokenizers import Tokenizer

    config = catalog.model(model).hf_config()
    folder = tokenizer.tokenizer_folder(model, config)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tok.get_vocab_size(with_added_tokens=True) == config["vocab_size"]
    for n in (1, 7, 128):
        text = tokenizer.prompt_text(n, seed=5, index=n)
        enc = tok.encode(text)
        assert len(enc.ids) == n == tokenizer.prompt_tokens(n, "completions")
        assert enc.ids == [int(w[1:]) for w in text.split()]  # word w<i> is id i
        assert tok.decode(enc.ids) == text


@pytest.mark.parametrize("model", ["tiny-qwen2", "tiny-llama3"])
def test_chat_template_counts_as_documented(model):
    # The class vLLM gets through AutoTokenizer, from the folder vLLM is given.
    from transformers import AutoTokenizer

    folder = tokenizer.prepare(model, "bf16", "dummy").tokenizer_path
    hf = AutoTokenizer.from_pretrained(folder)
    assert len(hf) == catalog.model(model).hf_config()["vocab_size"]
    text = tokenizer.prompt_text(10, seed=0, index=0)
    assert len(hf(text)["input_ids"]) == 10  # completions: no special token added
    rendered = hf.apply_chat_template(tokenizer.chat_messages(text), tokenize=False, add_generation_prompt=True)
    ids = hf(rendered, add_special_tokens=False)["input_ids"]  # as vLLM tokenises chat prompts
    assert len(ids) == tokenizer.prompt_tokens(10, "chat") == 14
    assert hf.convert_ids_to_tokens(ids[:2]) == [hf.bos_token, "<|user|>"]
    assert hf.convert_ids_to_tokens(ids[-2:]) == ["<|end|>", "<|assistant|>"]
    with pytest.raises(Exception, match="unsupported role"):
        hf.apply_chat_template([{"role": "tool", "content": "w1"}], tokenize=False)


# ------------------------------------------------------------------ arrivals
def test_poisson_arrivals_statistics():
    rate, n = 4.0, 20_000
    t = load.poisson_arrivals(rate, n, seed=7)
    gaps = np.diff(np.concatenate([[0.0], t]))
    assert (gaps > 0).all() and np.all(np.diff(t) >= 0)
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
    assert gaps.std() == pytest.approx(1 / rate, rel=0.05)  # exponential: sd == mean
    assert st.kstest(gaps * rate, "expon").pvalue > 0.01
    # counts per 1 s window: Poisson, variance == mean
    counts = np.bincount(t.astype(int))[:-1]
    assert counts.mean() == pytest.approx(rate, rel=0.03)
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.1)


def test_poisson_arrivals_seeded_and_scaled():
    a = load.poisson_arrivals(2.0, 50, seed=1)
    assert np.array_equal(a, load.poisson_arrivals(2.0, 50, seed=1))
    assert not np.array_equal(a, load.poisson_arrivals(2.0, 50, seed=2))
    np.testing.assert_allclose(load.poisson_arrivals(8.0, 50, seed=1), a / 4)
    assert (load.poisson_arrivals(math.inf, 5, seed=0) == 0).all()
    with pytest.raises(ValueError):
        load.poisson_arrivals(0.0, 5, seed=0)


# ---------------------------------------------------------------- aggregates
def _rec(i, ttft, itl, out=4, error=None, prompt=16, expected=16):
    r = RequestRecord("completions", i, max_tokens=4, prompt_tokens_expected=expected)
    if error:
        r.error_type, r.error = error, "boom"
        return r.row()
    r.ttft_s, r.itl_s = ttft, list(itl)
    r.e2e_s = ttft + sum(itl)
    r.total_s = r.e2e_s + 0.005  # the final usage chunk after the last token
    r.output_tokens, r.chunk_tokens, r.prompt_tokens = out, [1] * out, prompt
    return r.row()


def test_aggregate_percentiles_goodput_and_errors():
    rows = [
        _rec(0, 0.10, [0.01, 0.02, 0.03]),
        _rec(1, 0.15, [0.01, 0.01, 0.01]),
        _rec(2, 0.30, [0.05, 0.05, 0.05]),  # misses the 200 ms objective
        _rec(3, 0.0, [], error="connection_refused"),
    ]
    agg = load.aggregate(rows, duration_s=2.0)
    assert agg["requests"] == 4 and agg["completed"] == 3 and agg["errors"] == 1
    assert agg["status"] == "partial" and agg["failure"] is None
    assert json.loads(agg["error_counts"]) == {"connection_refused": 1}
    assert agg["req_s"] == pytest.approx(1.5)
    assert agg["output_tok_s"] == pytest.approx(12 / 2.0)
    ttft = [0.10, 0.15, 0.30]
    assert agg["ttft_p50_s"] == pytest.approx(0.15)
    assert agg["ttft_p90_s"] == pytest.approx(np.percentile(ttft, 90)) == pytest.approx(0.27)
    assert agg["ttft_p99_s"] == pytest.approx(0.297)
    itl = [0.01, 0.02, 0.03, 0.01, 0.01, 0.01, 0.05, 0.05, 0.05]
    assert agg["itl_p50_s"] == pytest.approx(np.median(itl)) == pytest.approx(0.02)
    assert agg["itl_p99_s"] == pytest.approx(np.percentile(itl, 99))
    assert agg["e2e_max_s"] == pytest.approx(0.45)
    assert agg["tpot_mean_s"] == pytest.approx(np.mean([0.02, 0.01, 0.05]))
    # goodput: two of four requests met TTFT <= 200 ms (a failed one never does)
    assert agg["slo_met"] == 2 and agg["slo_met_share"] == 0.5
    assert agg["goodput_req_s"] == pytest.approx(1.0)
    assert agg["prompt_token_mismatches"] == 0 and agg["short_outputs"] == 0
    # outstanding on average (Little): (0.165 + 0.185 + 0.455) request-seconds over 2 s; the failed
    # request never recorded how long it was out, so it adds nothing
    assert agg["client_in_flight_avg"] == pytest.approx(0.805 / 2.0)


def test_aggregate_other_objectives_and_mismatches():
    rows = [_rec(0, 0.1, [0.01, 0.01, 0.01]), _rec(1, 0.1, [0.2, 0.2, 0.2], out=3, prompt=17)]
    agg = load.aggregate(rows, 1.0, load.Slo(ttft_s=None, tpot_s=0.05))
    assert agg["slo_met"] == 1  # the second decodes at 200 ms per token
    assert agg["prompt_token_mismatches"] == 1 and agg["short_outputs"] == 1
    assert not load.Slo().met(RequestRecord("chat", 0, 4, None))  # NaN TTFT never meets it


def test_level_where_everything_failed_is_marked_failed():
    rows = [_rec(i, 0, [], error=e) for i, e in
            enumerate(["connection_refused", "connection_refused", "incomplete_stream"])]
    agg = load.aggregate(rows, 0.5)
    assert agg["status"] == "failed" and agg["failure"] == "connection_refused"
    assert agg["completed"] == 0 and agg["req_s"] == 0 and math.isnan(agg["ttft_p50_s"])
    assert agg["goodput_req_s"] == 0


# --------------------------------------------------------------------- ports
def test_port_in_use_is_detected_and_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"port {port} .*pid {os.getpid()}"):
            check_port_free("127.0.0.1", port)
        # A server asked for that port fails at once and starts nothing.
        server = VllmServer("/nonexistent-model", {}, log_path=os.devnull, port=port)
        t0 = time.monotonic()
        with pytest.raises(PortInUse):
            server.start()
        assert time.monotonic() - t0 < 5 and server.proc is None
    check_port_free("127.0.0.1", port)  # closed again: free


def test_free_port_can_be_bound():
    port = free_port()
    check_port_free("127.0.0.1", port)


# -------------------------------------------------------------------- client
def test_client_records_connection_refused():
    port = free_port()

    async def go():
        async with StreamingClient(f"http://127.0.0.1:{port}", "m", timeout_s=10) as c:
            return await c.request("completions", "w1000 w1001", 4, index=7, prompt_tokens_expected=2)

    rec = load.run_sync(go)
    assert rec.error_type == "connection_refused" and not rec.ok and rec.index == 7
    assert rec.output_tokens == 0 and math.isnan(rec.ttft_s) and rec.total_s >= 0


# A stand-in server on a real socket that streams what a test scripts: the client's
# timestamps, token counts and error types against known answers (vLLM's own server is
# tests/test_serving_engine.py's).
def _scripted(script, serve_app):
    from aiohttp import web

    async def handler(req):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(req)
        for step in script:
            if step == "hang":
                await asyncio.sleep(60)
            elif step == "cut":  # the server goes away mid-response
                req.transport.close()
                return resp
            elif isinstance(step, float):
                await asyncio.sleep(step)
            else:
                await resp.write(f"data: {json.dumps(step) if isinstance(step, dict) else step}\n\n".encode())
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)

    async def go(timeout_s=10.0):
        async with serve_app(app) as url, StreamingClient(url, "m", timeout_s=timeout_s) as c:
            return await c.request("chat", "w1 w2", 4, index=3)
    return go


def _chunk(completion_tokens, content=" w"):
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
            "usage": {"prompt_tokens": 9, "completion_tokens": completion_tokens}}


def test_client_times_each_chunk_and_counts_tokens_from_usage(serve_app):
    # chunks 50 ms apart, the second carrying two tokens: 3 chunks, 4 tokens
    script = [_chunk(1), 0.05, _chunk(3), 0.05, _chunk(4), {"choices": [], "usage": {"prompt_tokens": 9,
              "completion_tokens": 4}}, "[DONE]"]
    rec = load.run_sync(_scripted(script, serve_app))
    assert rec.ok and rec.output_tokens == 4 and rec.chunk_tokens == [1, 2, 1] and rec.prompt_tokens == 9
    assert rec.counts_from == "usage"
    assert len(rec.itl_s) == 2 and all(0.045 <= g < 0.2 for g in rec.itl_s), rec.itl_s
    # TPOT: 2 gaps of ~50 ms over the 3 tokens after the first
    assert rec.tpot_s == pytest.approx(sum(rec.itl_s) / 3)


@pytest.mark.parametrize("script, error_type", [
    ([_chunk(1), "cut"], "incomplete_stream"),  # the connection closed mid-response
    ([_chunk(1)], "incomplete_stream"),  # the response ended without [DONE]
    ([{"error": {"message": "boom", "code": 500}}], "stream_error"),  # an error after the 200
    ([_chunk(1), "hang"], "timeout"),
])
def test_client_names_how_a_stream_failed(script, error_type, serve_app):
    rec = load.run_sync(lambda: _scripted(script, serve_app)(timeout_s=1.0))
    assert rec.error_type == error_type and not rec.ok, (rec.error_type, rec.error)
    if error_type == "stream_error":
        assert rec.error == "boom"


def test_run_sync_inside_a_running_loop():
    async def inner():
        await asyncio.sleep(0)
        return 42

    async def outer():  # as in Jupyter, where a loop is already running
        return load.run_sync(inner)

    assert asyncio.run(outer()) == 42


# ------------------------------------------------------------------ watchdog
# A measuring process that starts a "server" in a session of its own, as
# VllmServer does, with the watchdog beside it; then it is killed outright.
PARENT = (
    "import os, subprocess, sys, time\n"
    "srv = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
    "subprocess.Popen([sys.executable, '-m', 'slmstudy.engine.watchdog', str(srv.pid), str(os.getpid())],\n"
    "                 start_new_session=True)\n"
    "print(srv.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def _gone(pid):
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_watchdog_kills_the_group_when_the_parent_is_killed():
    import subprocess
    import sys

    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    srv = int(parent.stdout.readline())
    try:
        assert not _gone(srv)
        parent.kill()  # SIGKILL: no atexit, no finally
        parent.wait()
        deadline = time.monotonic() + 30
        while not _gone(srv) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(srv), "the server outlived its killed parent"
    finally:
        if not _gone(srv):
            os.killpg(srv, 9)


# ------------------------------------------------------- cross-check level sizes
def test_crosscheck_levels_hold_waves_of_requests_per_user():
    from slmstudy.experiments import serving
    from slmstudy.experiments.registry import resolve
    from slmstudy.serving.spec import BenchServeCheck

    check = BenchServeCheck(concurrency=(1, 8, 32), requests=64, per_user=10)
    # max(64, 10 x users): 64 at 1 user, 80 at 8, 320 at 32
    assert [check.requests_at(c) for c in check.concurrency] == [64, 80, 320]
    assert BenchServeCheck(concurrency=(32,), requests=64).requests_at(32) == 64  # off by default
    # the GPU fidelity layer asks for exactly that, through its parameters and into the job
    resolved = resolve("04_serving", "gpu", ["params/04_serving/fidelity_gpu.yaml"], None, machine=False)
    spec = serving.load_spec(resolved.params).bench_serve
    assert [spec.requests_at(c) for c in spec.concurrency] == [64, 80, 320]
