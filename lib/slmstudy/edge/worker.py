"""Runs inside the child process of one edge (llama.cpp) configuration.

``python -m slmstudy.edge.worker SPEC_JSON OUT_DIR`` builds (or finds) the GGUF
file in a child process (``python -m slmstudy.gguf_files``: the build's memory must
not count in this process's resident size), starts the telemetry sampler, loads the
model with llama.cpp's server code through the xllamacpp binding, runs ``warmup +
repetitions`` single requests of fixed length, and journals everything to
``OUT_DIR/events.jsonl`` as it goes.

How a request is timed: xllamacpp's ``Server.handle_completions`` runs
llama-server's OpenAI-compatible completion handler in this thread (no HTTP) and
calls back once per streamed chunk; the callback only keeps ``(time.time(),
chunk text)``, and chunks are parsed after the request. A chunk usually carries
one token, but llama-server holds a token back while its text is an incomplete
UTF-8 sequence, so the token count of a chunk is taken from llama.cpp's own
cumulative ``timings.predicted_n`` (``timings_per_token``), and held-back tokens
get the arrival time of the chunk that delivered them (that is when a user sees
them).

Threads: llama.cpp computes with ``spec.threads`` threads for generation and for
prompt processing (``cpuparams`` and ``cpuparams_batch``); the build uses OpenMP,
whose team is also capped by ``OMP_NUM_THREADS`` (set by the runner). Besides
those, the process holds this Python thread (blocked in the request, woken per
chunk), llama-server's loop thread (which is one of the compute threads), an idle
HTTP listener on 127.0.0.1 (the binding always starts one; 1 worker thread) and
llama.cpp's log thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from ..engine.journal import Journal, Relayed, run_journaled
from ..engine.procs import describe_exit
from ..engine.batches import TOKEN_HIGH, prompt_ids
from ..telemetry.sampler import Sampler
from .spec import EdgeJob, EdgeSpec

WARMUP_TAG = 900_000  # prompt tags of warmup runs: never those of measured runs
LOG_WAIT_S = 2.0  # how long to wait for llama.cpp's log thread to write its start-up lines

_TIMING_KEYS = ("prompt_n", "prompt_ms", "prompt_per_second", "predicted_n", "predicted_ms",
                "predicted_per_second", "cache_n")


def server_params(spec: EdgeSpec, path: Path) -> Any:
    """llama-server's parameters for one configuration."""
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(path)
    p.n_ctx = spec.n_ctx
    p.n_parallel = 1  # one slot: batch is always one
    p.cpuparams.n_threads = spec.threads  # generation
    p.cpuparams_batch.n_threads = spec.threads  # prompt processing
    p.n_threads_http = 1  # the binding starts an HTTP listener we never use
    p.fit_params = False  # fitting to device memory loads the model twice; nothing to fit on a CPU
    p.cache_ram_mib = 0  # no host-memory prompt cache: every repetition computes its prompt
    p.cache_idle_slots = False
    p.ctx_shift = False  # a request longer than the context fails instead of silently shifting
    p.warmup = True  # llama-server's default empty run at load (counted in the load time)
    p.endpoint_metrics = False
    # Info and debug lines: system_info with the thread counts, the model's buffers
    # (mapped file, repacked weights), KV cache and compute buffers, the memory
    # breakdown at exit. None per token; a few per request.
    p.verbosity = 4
    return p


def request_body(ids: list[int], output_len: int, seed: int) -> str:
    """A streamed completion of exactly ``output_len`` tokens after the token-ID
    prompt ``ids``: end-of-sequence ignored, greedy, no prompt cache reuse."""
    return json.dumps({
        "prompt": ids,
        "n_predict": output_len,
        "max_tokens": output_len,
        "ignore_eos": True,
        "temperature": 0.0,
        "seed": seed,
        "stream": True,
        "cache_prompt": False,
        "timings_per_token": True,
    })


class Chunks:
    """The stream of one request: the callback is an append of a tuple."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[float, str]] = []

    def __call__(self, chunk: str) -> bool:
        self.items.append((time.time(), chunk))
        return False  # go on


def parse_stream(items: list[tuple[float, str]]) -> dict[str, Any]:
    """Per-token arrival times and llama.cpp's counts and timings from the chunks
    of one request (see the module docstring for how tokens are counted)."""
    token_times: list[float] = []
    server_ms: list[float] = []  # llama.cpp's cumulative predicted_ms at each token's chunk
    timings: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    finish = None
    error = None
    prev = 0
    for t, raw in items:
        try:
            chunk = json.loads(raw)
        except json.JSONDecodeError:
            error = error or f"unparseable chunk: {raw[:200]!r}"
            continue
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk or ("code" in chunk and "message" in chunk):
            err = chunk.get("error", chunk)
            error = error or (err.get("message") if isinstance(err, dict) else str(err))
            continue
        if chunk.get("timings"):
            timings = chunk["timings"]
        if chunk.get("usage"):
            usage = chunk["usage"]
        choice = (chunk.get("choices") or [{}])[0]
        finish = choice.get("finish_reason") or finish
        n = timings.get("predicted_n") if chunk.get("timings") else None
        if n is None:  # no per-token timings: one token per chunk that carries text
            n = prev + (1 if choice.get("text") else 0)
        if n > prev:
            token_times.extend([t] * (n - prev))
            server_ms.extend([float(timings.get("predicted_ms", float("nan")))] * (n - prev))
            prev = n
    return {"token_times": token_times, "llama_predicted_ms_at_token": server_ms, "chunks": len(items),
            "timings": {k: timings.get(k) for k in _TIMING_KEYS if k in timings}, "usage": usage,
            "finish_reason": finish, "error": error}


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def reset_peak_rss() -> bool:
    """Reset this process's peak resident size (Linux ``clear_refs`` 5); False
    when not possible, then the peak read later is the process's since start."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def rss_split() -> dict[str, int]:
    """Resident memory by kind (Linux): anonymous (heap: repacked weights, KV cache,
    buffers) and file-backed (the mmap-ed GGUF file's pages, which the kernel may
    drop and read again under memory pressure)."""
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    name, value = line.split(":", 1)
                    out[f"{name.lower().replace('rss', 'rss_')}_bytes"] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def peak_rss_bytes() -> int | None:
    """VmHWM: the peak resident size since start or the last reset."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_request(server: Any, ids: list[int], output_len: int, seed: int) -> dict[str, Any]:
    """One streamed request, timed; the peak RSS is that of this request when the
    kernel lets us reset it."""
    chunks = Chunks()
    body = request_body(ids, output_len, seed)
    scoped = reset_peak_rss()
    t_submit = time.time()
    server.handle_completions(body, chunks)  # blocks until the last chunk
    t_done = time.time()
    peak = peak_rss_bytes()
    parsed = parse_stream(chunks.items)
    times = parsed.pop("token_times")
    timings, usage = parsed["timings"], parsed["usage"]
    n_gen = len(times)
    return {
        "t_submit": t_submit,
        "t_first_token": times[0] if times else None,
        "t_last_token": times[-1] if times else None,
        "t_done": t_done,
        "ttft_s": times[0] - t_submit if times else None,
        "e2e_s": times[-1] - t_submit if times else None,
        # Time per output token after the first: the decode speed one user sees.
        "tpot_s": (times[-1] - times[0]) / (n_gen - 1) if n_gen > 1 else None,
        "token_times": times,
        "n_prompt_tokens": usage.get("prompt_tokens", timings.get("prompt_n")),
        "n_generated": usage.get("completion_tokens", timings.get("predicted_n")),
        "n_token_times": n_gen,
        "rss_peak_bytes": peak,
        "rss_peak_scope": "request" if scoped else "process",
        "rss_after_bytes": rss_bytes(),
        **{f"{k[:-6]}_after_bytes": v for k, v in rss_split().items()},
        **parsed,
    }


def check_run(r: dict[str, Any], input_len: int, output_len: int) -> str | None:
    """Why a request's output does not count, or None."""
    if r["error"]:
        return f"llama.cpp answered with an error: {r['error']}"
    problems = []
    if r["n_token_times"] != output_len:
        problems.append(f"{r['n_token_times']} tokens streamed")
    if r["n_generated"] != output_len:
        problems.append(f"llama.cpp counted {r['n_generated']} generated tokens")
    if r["timings"].get("predicted_n") not in (None, output_len):
        problems.append(f"timings.predicted_n = {r['timings'].get('predicted_n')}")
    if problems:
        return (f"expected exactly {output_len} output tokens, got: {'; '.join(problems)} "
                f"(finish_reason {r['finish_reason']!r})")
    if r["n_prompt_tokens"] != input_len:
        return f"expected {input_len} prompt tokens, llama.cpp counted {r['n_prompt_tokens']}"
    return None


def _model_meta(server: Any) -> dict[str, Any]:
    """What llama.cpp says about the loaded model (``/v1/models``' ``meta``: n_params,
    size, n_vocab, ...): the binding does not expose it, its idle HTTP listener does."""
    try:
        with urllib.request.urlopen(server.listening_address + "/v1/models", timeout=10) as resp:
            data = json.loads(resp.read())
        return dict(data["data"][0].get("meta") or {})
    except Exception as exc:  # a bonus: never fail a run for it
        return {"meta_error": f"{type(exc).__name__}: {exc}"}


_LOG_FACTS = {
    "threadpool_n_threads": re.compile(r"llama threadpool init, n_threads = (\d+)"),
    "system_info": re.compile(r"system_info: (.*)$"),
    "http_threads": re.compile(r"using (\d+) threads for HTTP server"),
    "load_mode": re.compile(r"load_tensors: .*\(load_mode = (\w+)\)"),
}
# "load_tensors:   CPU_REPACK model buffer size =   812.25 MiB", "llama_kv_cache:  CPU KV buffer size = 28.00 MiB"
_BUFFER = re.compile(r"(\S+)\s+(model|KV|output|compute) buffer size =\s*([\d.]+) MiB")


def log_facts(text: str) -> dict[str, Any]:
    """Start-up facts from llama.cpp's log: thread counts, system info, buffers (MiB)."""
    found: dict[str, Any] = {}
    buffers: dict[str, float] = {}
    for line in text.splitlines():
        for key, rx in _LOG_FACTS.items():
            if key not in found and (m := rx.search(line)):
                found[key] = m.group(1).strip()
        if m := _BUFFER.search(line):
            name = f"{m.group(1)} {m.group(2)}"
            buffers[name] = buffers.get(name, 0.0) + float(m.group(3))
        if "model loaded" in line:
            break  # what follows is requests
    for key in ("threadpool_n_threads", "http_threads"):
        if key in found:
            found[key] = int(found[key])
    found["buffers_mib"] = buffers
    return found


def _log_facts(log: Path, wait_s: float = LOG_WAIT_S) -> dict[str, Any]:
    """``log_facts`` of this process's log (its stderr, which the runner sends to
    ``OUT_DIR/engine.log``); llama.cpp's log thread may lag a moment behind."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            return {}
        if "threadpool init" in text or time.monotonic() > deadline:
            return log_facts(text)
        time.sleep(0.1)


def _restore_signals() -> None:
    """llama-server's init installs its own SIGINT/SIGTERM handlers (stop the main
    loop; exit on the second signal), bound to objects that die with the Server.
    The runner ends a job by signalling its process group: SIGTERM must end this
    process, as in any other worker."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


# A warmup request generates at most this many tokens. It is there to fault the file's
# pages in, warm the caches and start llama.cpp's thread pool: every generated token
# reads all the weights, so 32 tokens do that 32 times over, and a 512-token warmup
# (article 001's length) would add ~20 s per job on the lent host's 4 threads.
WARMUP_OUTPUT_LEN = 32


def measure(server: Any, job: EdgeJob, vocab: int, journal: Journal) -> None:
    point, spec = job.point, job.engine
    plan = [(True, w) for w in range(point.warmup)] + [(False, r) for r in range(point.repetitions)]
    for warmup, rep in plan:
        tag = WARMUP_TAG + rep if warmup else rep
        out_len = min(point.output_len, WARMUP_OUTPUT_LEN) if warmup else point.output_len
        labels = {"input_len": point.input_len, "output_len": out_len}
        ids = prompt_ids(spec.seed, tag, 1, point.input_len, vocab)[0]
        with journal.phase("run", warmup=warmup, rep=rep, **labels) as extra:
            r = run_request(server, ids, out_len, spec.seed)
            extra["n_generated"] = r["n_token_times"]
        problem = check_run(r, point.input_len, out_len)
        journal.write("run", warmup=warmup, rep=rep, ok=problem is None, **labels, **r)
        if problem:
            journal.write("point_error", warmup=warmup, rep=rep, **labels, error=problem)


def gguf_facts(model: str, file_type: str, out: Path) -> dict[str, Any]:
    """Build (or find) the GGUF file in a child process (``python -m
    slmstudy.gguf_files``, the study's file job) and return its facts.

    A child, so that the build's memory (a 1.5B model's tensors while written,
    the vocabulary's Python objects) never counts in this process's resident
    size, which is measured after the model is loaded."""
    facts = out / "gguf.json"
    facts.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "slmstudy.gguf_files", str(facts), "--model", model,
                           "--file-type", file_type], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True)
    if proc.returncode != 0 or not facts.exists():
        lines = proc.stderr.strip().splitlines()
        raise Relayed(lines[-1] if lines else f"the GGUF build process ended with {describe_exit(proc.returncode)}")
    return json.loads(facts.read_text())


def run(job: EdgeJob, out: Path, journal: Journal) -> None:
    from .. import catalog

    spec, point = job.engine, job.point
    with journal.phase("gguf_build", model=spec.model, file_type=spec.file_type) as extra:
        t0 = time.perf_counter()
        gguf = gguf_facts(spec.model, spec.file_type, out)
        extra["seconds"] = time.perf_counter() - t0
    vocab = catalog.model(spec.model).hf_config()["vocab_size"]
    journal.write("config", key=job.key, job=job.model_dump(mode="json"), pid=os.getpid(), gguf=gguf,
                  vocab_size=vocab, request=json.loads(request_body([0], point.output_len, spec.seed)) | {"prompt": "token ids"},
                  omp_num_threads=os.environ.get("OMP_NUM_THREADS"))
    if point.input_len + point.output_len > spec.n_ctx:
        raise ValueError(f"input_len + output_len = {point.input_len + point.output_len} tokens do not fit "
                         f"the context of {spec.n_ctx} tokens (n_ctx)")

    sampler = Sampler.from_options(spec.telemetry, out / "telemetry.jsonl", root_pid=os.getpid())
    if sampler is not None:
        journal.write("telemetry", **sampler.start())
    else:
        journal.write("telemetry", backend="none", fallback_reason="disabled in parameters")
    server = None
    try:
        with journal.phase("engine_start") as extra:
            t0 = time.perf_counter()
            import xllamacpp

            extra["import_s"] = time.perf_counter() - t0
            params = server_params(spec, Path(gguf["path"]))
            rss0 = rss_bytes()
            reset_peak_rss()
            t1 = time.perf_counter()
            try:
                server = xllamacpp.Server(params)
            finally:
                _restore_signals()
            load_s = time.perf_counter() - t1
        meta = _model_meta(server)
        n_vocab = meta.get("n_vocab")
        if isinstance(n_vocab, int) and n_vocab < min(TOKEN_HIGH, vocab):
            raise ValueError(f"the GGUF file's vocabulary has {n_vocab} tokens: prompt token IDs go up to "
                             f"{min(TOKEN_HIGH, vocab) - 1} (the catalog's {spec.model} has {vocab})")
        journal.write(
            "engine",
            backend="llama.cpp (xllamacpp)",
            xllamacpp_version=xllamacpp.__version__,
            build_info=dict(xllamacpp.BUILD_INFO),
            system_info=xllamacpp.get_system_info(),
            llama_log=_log_facts(out / "engine.log"),
            n_threads=spec.threads,
            n_threads_batch=spec.threads,
            cpu_count=os.cpu_count(),
            cpu_affinity=sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            process_threads=psutil.Process().num_threads(),
            load_s=load_s,
            import_s=extra["import_s"],
            model_meta=meta,
            rss_before_load_bytes=rss0,
            rss_after_load_bytes=rss_bytes(),
            rss_peak_load_bytes=peak_rss_bytes(),
            **{f"{k[:-6]}_after_load_bytes": v for k, v in rss_split().items()},
        )
        measure(server, job, vocab, journal)
    finally:
        if server is not None:
            with journal.phase("shutdown"):
                del server  # ~Server stops llama-server's loop and joins its thread
        if sampler:
            sampler.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m slmstudy.edge.worker SPEC_JSON OUT_DIR", file=sys.stderr)
        return 2
    job = EdgeJob.load(Path(argv[0]))
    out = Path(argv[1])
    journal = Journal(out / "events.jsonl")
    return run_journaled(journal, lambda: run(job, out, journal))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
