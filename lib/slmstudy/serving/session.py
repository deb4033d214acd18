"""One server measurement: ``vllm serve`` for an engine, the load sweeps against
it with the telemetry sampler beside it, and article 000's own client calls.

It leaves raw files only, each appended as measured so a crash keeps everything
before it: ``server.log``, ``server.json`` (what was served, how it started and
stopped), ``events.jsonl`` (load phases, levels and requests on the wall clock of
the telemetry trace, and the server's counters read at each level's edges),
``telemetry.jsonl``, ``metrics.jsonl`` (the server's ``/metrics`` read at the
telemetry rate by the sampler's process), ``client_demo.json``, and with the
serving cross-check ``crosscheck.jsonl`` and ``bench_serve_*`` / ``guidellm_*`` files. The results
layer turns them into tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..engine import caches, procs
from ..engine.args import engine_env
from ..engine.journal import Journal
from ..engine.runner import RunResult, clean
from ..telemetry import server_metrics
from ..telemetry.sampler import Sampler
from . import bench_serve, external, guidellm_run, tokenizer
from .client import StreamingClient
from .load import Slo, Workload, run_sync, sweep
from .server import ServerStartError, VllmServer
from .spec import LoadLevels, ServeJob, SteadyState
from .tokenizer import GENERATED

CROSSCHECK = "crosscheck.jsonl"
RAW = ("server.log", "server.json", "events.jsonl", "telemetry.jsonl", "telemetry.stderr", "metrics.jsonl",
       "client_demo.json", CROSSCHECK)


def _sweep(server: VllmServer, journal: Journal, mode: str, levels: LoadLevels, w: Workload, warmup: int,
           slo: Slo, timeout_s: float, first_index: int, labels: dict[str, Any],
           on_edge: Callable[[str, dict[str, Any]], None] | None, steady: SteadyState | None) -> int:
    """One sweep; returns the prompt index the next sweep starts from."""
    async def go() -> int:
        async with StreamingClient(server.base_url, server.served_model_name, timeout_s=timeout_s) as client:
            result = await sweep(client, w, mode, levels.levels, levels.requests_per_level, slo=slo,  # type: ignore[arg-type]
                                 warmup_requests=warmup, journal=journal, labels=labels, first_index=first_index,
                                 on_edge=on_edge, steady=steady)
            return result.next_index
    return run_sync(go)


def _edge_reader(server: VllmServer, journal: Journal) -> Any:
    """The server's counters read at each level's edges (nothing in flight then), so
    a level's counter differences hold exactly its own work."""
    http = server_metrics.client(10.0)
    url = f"{server.base_url}/metrics"

    def edge(name: str, labels: dict[str, Any]) -> None:
        journal.write("server_metrics", edge=name, **labels, **server_metrics.scrape_once(http, url))

    return http, edge


def client_demo(server: VllmServer) -> dict[str, Any]:
    """Article 000's two calls through the ``openai`` package, unchanged but for the
    address and model name: a plain chat completion and a streamed one. With
    random weights the text is meaningless words; the call path and usage are real."""
    import openai

    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="EMPTY")
    response = client.chat.completions.create(
        model=server.served_model_name,
        messages=[{"role": "user", "content": "w1000 w2000 w3000 w4000"}],
        temperature=0.7,
        max_tokens=16,
    )
    stream = client.chat.completions.create(
        model=server.served_model_name,
        messages=[{"role": "user", "content": "w1000 w2000 w3000 w4000"}],
        temperature=0.6,
        max_tokens=16,
        stream=True,
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    return {"plain": {"content": response.choices[0].message.content, "usage": response.usage.model_dump()},
            "stream": {"chunks": len(pieces), "text": "".join(pieces)[:400]}}


def crosscheck(server: VllmServer, job: ServeJob, out: Path, w: Workload, slo: Slo, first_index: int) -> None:
    """Our client and the other tools (``vllm bench serve``, GuideLLM) take turns
    against this server, their order rotated over levels and rounds so drifts of the
    host cancel, each level's prompts the same for every tool; journaled to
    ``crosscheck.jsonl`` apart from the sweeps."""
    check = job.load.bench_serve
    assert check is not None
    spec = job.engine
    served = tokenizer.prepare(spec.model, spec.precision, spec.weights, spec.weights_path)
    tok = served.tokenizer_path or served.source.model
    journal = Journal(out / CROSSCHECK)
    labels = {**server.facts, "model": spec.model, "precision": spec.precision}
    index = first_index
    timeout_s = job.load.request_timeout_s * 2
    # each tool imported once per server, before its first level (nothing measured beside
    # the import), then waiting blocked while the others take their turns
    hosts = {"bench_serve": external.ToolHost("vllm", out / "bench_serve_host.log"),
             "guidellm": external.ToolHost("guidellm", out / "guidellm_host.log")}
    try:
        for rnd in range(1, check.rounds + 1):
            for i, c in enumerate(check.concurrency):
                n = check.requests_at(c)
                for tool in check.order(rnd, i):
                    lab = {**labels, "round": rnd, "tool": tool}
                    if tool == "slmstudy":
                        _sweep(server, journal, "concurrency", LoadLevels(levels=(float(c),),
                               requests_per_level=n), w, 0, slo, job.load.request_timeout_s,
                               index, lab, None, None)  # fixed size: every tool sends the same prompts
                        continue
                    with journal.phase(tool, level=c, **lab):
                        if tool == "bench_serve":
                            line = bench_serve.run(server.base_url, server.served_model_name, tok, w, c,
                                                   n, index, out, f"bench_serve_r{rnd}_c{c}", timeout_s,
                                                   hosts[tool])
                        else:
                            line = guidellm_run.run(server.base_url, server.served_model_name, w, c, n,
                                                    index, out, f"guidellm_r{rnd}_c{c}", timeout_s, hosts[tool])
                    journal.write("bench_serve", mode="concurrency", level=float(c), **lab, **line)
                index += n  # every tool sent these prompts; the next level gets new ones
    finally:
        for host in hosts.values():
            host.close()
        journal.close()


def measure(server: VllmServer, job: ServeJob, out: Path) -> None:
    """Load a running server as ``job.load`` asks, the sampler watching its process
    group; journal and trace into ``out`` (appended as measured)."""
    spec, load = job.engine, job.load
    w = Workload(api=load.api, input_tokens=load.input_tokens, output_tokens=load.output_tokens,
                 temperature=load.temperature, seed=spec.seed, exact_counts=server.facts.get("tokenizer") == GENERATED)
    slo = Slo(ttft_s=load.slo_ttft_s)
    journal = Journal(out / "events.jsonl")
    sampler = http = edge = None
    try:
        journal.write("server", **server.info())
        if load.server_metrics:
            http, edge = _edge_reader(server, journal)
        sampler = Sampler.from_options(spec.telemetry, out / "telemetry.jsonl", root_pid=server.pid or 0,
                                       metrics_url=f"{server.base_url}/metrics" if load.server_metrics else None,
                                       gpus=spec.engine.tensor_parallel_size)
        journal.write("telemetry", **(sampler.start() if sampler else {"backend": "none",
                                                                         "fallback_reason": "disabled"}))
        if sampler and (idle := sampler.idle_baseline(spec.telemetry.idle_baseline_s)):
            # the server is up with its model loaded: its idle, not the bare GPU's
            journal.write("phase", name="idle_baseline", t0=idle[0], t1=idle[1], ok=True,
                          state="server started, no requests")
        labels = {**server.facts, "model": spec.model, "precision": spec.precision}
        first = 0
        for mode, levels, warmup in (("concurrency", load.closed_loop, load.warmup_requests),
                                     ("rate", load.open_loop, 0)):
            if levels is None:
                continue
            first = _sweep(server, journal, mode, levels, w, warmup, slo, load.request_timeout_s, first, labels, edge,
                           load.steady)
        if load.bench_serve is not None:
            crosscheck(server, job, out, w, slo, first)
        if load.client_demo:
            try:
                write_json(out / "client_demo.json", client_demo(server))
            except Exception as exc:  # the demo is shown, not measured: record why it failed
                write_json(out / "client_demo.json", {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if sampler:
            sampler.stop()
        if http:
            http.close()
        journal.close()


def env(job: ServeJob, cache_root: Path) -> dict[str, str]:
    """The server's environment (its standby's too): the model's caches, the precision's
    engine settings."""
    return {**caches.env(cache_root), **engine_env(job.engine.precision, job.engine.engine)}


def run(job: ServeJob, out: Path, cache_root: Path, standby: procs.Group | None = None) -> RunResult:
    """Serve, load, record; never raises for a server that fails to start or dies
    (``standby``: from ``server.start_standby(env(job, cache_root), ...)``)."""
    clean(out)
    for name in RAW:
        (out / name).unlink(missing_ok=True)
    for leftover in [*out.glob("bench_serve_*"), *out.glob("guidellm_*")]:
        leftover.unlink()
    spec = job.engine
    served = tokenizer.prepare(spec.model, spec.precision, spec.weights, spec.weights_path)
    server = VllmServer.for_model(served, spec.precision, spec.engine, spec.seed, out / "server.log",
                                  log_stats=job.load.server_metrics, start_timeout_s=spec.engine.start_timeout_s,
                                  env=env(job, cache_root))
    cache_state = caches.prepare(cache_root, cold=False)
    started = time.time()
    error = cause = None
    try:
        server.start(standby)
        measure(server, job, out)
    except ServerStartError as exc:
        error, cause = str(exc), exc.root_cause or str(exc)
    except Exception as exc:  # recorded; the study goes on
        error = cause = f"{type(exc).__name__}: {exc}"
    finally:
        leftovers = server.stop()
        write_json(out / "server.json", server.info())
    return RunResult(error=error, root_cause=cause, returncode=server.proc.returncode if server.proc else None,
                     leftover_processes_killed=leftovers, seconds=time.time() - started, started_at=started,
                     finished_at=time.time(), compile_cache=cache_state)
