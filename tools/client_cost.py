"""What our streaming load client costs per chunk, against bare readers of the same stream.

    python tools/client_cost.py [--users 8,32,64] [--requests-per-user 4] [--tokens 128]

A local server (aiohttp, in a process of its own) streams vLLM-shaped chat chunks, one
every 2 ms per request (a decode step), to ``users`` concurrent users; each reader then
takes the same stream: ``slmstudy`` (serving/client.py, the 04 notebook's client: parse,
count tokens from the running usage, timestamp each chunk), ``bare aiohttp`` and ``bare
httpx`` (read each SSE line, parse it, timestamp it: nothing else). Printed per reader:
chunks per second, the client process's CPU per chunk and its share of a core, the
median gap between a request's chunks (2 ms when the client keeps up), and errors.

Why: the client's timestamps are taken when its event loop gets to a chunk, so a
client near a full core measures itself (2026-12-07: the httpx-based client used 95% of
a core at 32 users here and read larger gaps than vllm bench serve on the H100). The
server shares this machine's cores, so compare readers within one run, not across
machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

STEP_S = 0.002
CHUNK = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "slmstudy",
         "choices": [{"index": 0, "delta": {"content": " word"}, "logprobs": None, "finish_reason": None}]}


def serve(port: int) -> None:
    from aiohttp import web

    async def handler(req: web.Request) -> web.StreamResponse:
        n = (await req.json())["max_tokens"]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(req)
        for i in range(n):
            chunk = {**CHUNK, "usage": {"prompt_tokens": 132, "total_tokens": 133 + i, "completion_tokens": i + 1}}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(STEP_S)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def body(tokens: int) -> dict:
    return {"model": "slmstudy", "max_tokens": tokens, "stream": True,
            "messages": [{"role": "user", "content": "hello " * 100}]}


async def ours(url: str, users: int, n: int, tokens: int) -> list[list[float]]:
    from slmstudy.serving.client import StreamingClient

    async with StreamingClient(url, "slmstudy") as c:
        sem = asyncio.Semaphore(users)

        async def one(i: int) -> list[float]:
            async with sem:
                rec = await c.request("chat", "hello " * 100, tokens, index=i)
                assert rec.ok, rec.error
                return rec.itl_s
        return await asyncio.gather(*(one(i) for i in range(n)))


async def bare_aiohttp(url: str, users: int, n: int, tokens: int) -> list[list[float]]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        sem = asyncio.Semaphore(users)

        async def one(i: int) -> list[float]:
            async with sem:
                arrivals = []
                async with s.post(url + "/v1/chat/completions", json=body(tokens)) as r:
                    async for line in r.content:
                        if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                            json.loads(line[5:])
                            arrivals.append(time.perf_counter())
                return [b - a for a, b in zip(arrivals, arrivals[1:])]
        return await asyncio.gather(*(one(i) for i in range(n)))


async def bare_httpx(url: str, users: int, n: int, tokens: int) -> list[list[float]]:
    import httpx

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=None), trust_env=False, timeout=60) as c:
        sem = asyncio.Semaphore(users)

        async def one(i: int) -> list[float]:
            async with sem:
                arrivals = []
                async with c.stream("POST", url + "/v1/chat/completions", json=body(tokens)) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data:") and line[5:].strip() != "[DONE]":
                            json.loads(line[5:])
                            arrivals.append(time.perf_counter())
                return [b - a for a, b in zip(arrivals, arrivals[1:])]
        return await asyncio.gather(*(one(i) for i in range(n)))


READERS = {"slmstudy": ours, "bare aiohttp": bare_aiohttp, "bare httpx": bare_httpx}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", default="8,32,64")
    ap.add_argument("--requests-per-user", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    a = ap.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = mp.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):  # until it listens
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    print(f"{'users':>5}  {'reader':13s} {'chunks/s':>9} {'CPU us/chunk':>12} {'CPU share':>9} {'gap p50 ms':>10}")
    try:
        for read in READERS.values():  # imports and first connections outside the timed runs
            asyncio.run(read(url, 2, 2, 8))
        for users in (int(u) for u in a.users.split(",")):
            for name, read in READERS.items():
                n = users * a.requests_per_user
                c0, w0 = time.process_time(), time.perf_counter()
                gaps = asyncio.run(read(url, users, n, a.tokens))
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                chunks = n * a.tokens
                gap = statistics.median(g for r in gaps for g in r)
                print(f"{users:5d}  {name:13s} {chunks / wall:9.0f} {1e6 * cpu / chunks:12.1f} "
                      f"{100 * cpu / wall:8.1f}% {1e3 * gap:10.2f}", flush=True)
    finally:
        server.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
