"""An async streaming client for vLLM's OpenAI-compatible API that times every chunk.

One ``request`` sends ``/v1/completions`` or ``/v1/chat/completions`` with
``stream: true`` and returns a ``RequestRecord``: time to first token, the gap
before every later token-carrying chunk, end-to-end latency, prompt and output
tokens, and, when it failed, why. It never raises for a failed request, so a
load generator can count failures instead of stopping at the first.

Token counts come from the server: ``stream_options.continuous_usage_stats``
(vLLM's extension, in 0.26 and 0.32) puts the running ``usage`` on every chunk,
so each chunk's token count is exact even when one chunk carries several tokens.
A server that ignores it gives one token per content chunk (``counts_from``
says which). ``ignore_eos`` (also vLLM's) fixes the output length at
``max_tokens`` whatever the weights say.

Times are ``time.perf_counter`` differences; ``t_send`` and ``t_end`` are wall
clock, to line requests up with the telemetry trace.

The transport is aiohttp, as ``vllm bench serve``'s. Until 2026-12-07 it was httpx,
whose async streaming cost about 90 us of client CPU per chunk against aiohttp's 30
(a local server streaming vLLM-shaped chunks to 32 users: the httpx client at 95% of a
core, tools/client_cost.py); on the lent H100 our client then read time to first
token 10-50% and the chunk gap up to 35% above ``vllm bench serve``'s at 32 users, in
two of three rounds, and used 98% of a core at 128 requests/s: a timestamp is taken
when the event loop gets to a chunk, so a saturated client measures itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from .tokenizer import Api, chat_messages

PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass
class RequestRecord:
    api: str
    index: int
    max_tokens: int
    prompt_tokens_expected: int | None
    t_send: float = math.nan  # wall clock
    t_end: float = math.nan  # wall clock
    ttft_s: float = math.nan
    e2e_s: float = math.nan  # until the last token arrived (as the offline worker defines it)
    total_s: float = math.nan  # until the response ended (final usage chunk, [DONE], or the error)
    itl_s: list[float] = field(default_factory=list)  # gap before each token-carrying chunk after the first
    chunk_tokens: list[int] = field(default_factory=list)  # tokens in each token-carrying chunk
    prompt_tokens: int | None = None  # as the server counted them
    output_tokens: int = 0
    counts_from: str | None = None  # "usage" or "chunks"
    finish_reason: str | None = None
    http_status: int | None = None
    error_type: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None

    @property
    def tpot_s(self) -> float:
        """Time per output token after the first: the decode speed one user sees."""
        if self.output_tokens > 1 and self.itl_s:
            return sum(self.itl_s) / (self.output_tokens - 1)
        return math.nan

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["tpot_s"] = self.tpot_s
        return out


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kind):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def classify(exc: BaseException) -> str:
    """A short error type for a failed request (counted per load level)."""
    if isinstance(exc, TimeoutError):  # asyncio's and aiohttp's read/connect timeouts are TimeoutErrors
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError) or _caused_by(exc, ConnectionRefusedError) \
            or "refused" in str(exc).lower()
        return "connection_refused" if refused else "connect_error"
    if _caused_by(exc, ConnectionResetError) or "reset" in str(exc).lower():
        return "connection_reset"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        # the server went away mid-response (or its body ended before the chunked encoding did)
        return "incomplete_stream"
    if isinstance(exc, aiohttp.ClientResponseError):  # e.g. a malformed response
        return "http_error"
    if isinstance(exc, aiohttp.ClientError):
        return "transport_error"
    if isinstance(exc, (json.JSONDecodeError, KeyError, TypeError)):
        return "protocol_error"
    raise exc


class StreamingClient:
    """``async with StreamingClient(base_url, model) as c: rec = await c.request(...)``"""

    def __init__(self, base_url: str, model: str, timeout_s: float = 600.0, connect_timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        # Made inside the running event loop (every caller is a coroutine): aiohttp binds to it.
        self._http = aiohttp.ClientSession(
            # Open-loop load can have many requests in flight: a connection limit
            # would queue them inside the client and hide the server's queueing.
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=timeout_s),
            trust_env=False,  # a local server: never through a proxy from the environment
        )

    async def aclose(self) -> None:
        await self._http.close()

    async def __aenter__(self) -> "StreamingClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def body(self, api: Api, prompt: str, max_tokens: int, temperature: float = 0.0,
             ignore_eos: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "ignore_eos": ignore_eos,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        }
        if api == "completions":
            body["prompt"] = prompt
        elif api == "chat":
            body["messages"] = chat_messages(prompt)
        else:
            raise ValueError(f"api must be 'completions' or 'chat', not {api!r}")
        return body

    async def request(self, api: Api, prompt: str, max_tokens: int, *, index: int = 0,
                      prompt_tokens_expected: int | None = None, temperature: float = 0.0,
                      ignore_eos: bool = True) -> RequestRecord:
        rec = RequestRecord(api, index, max_tokens, prompt_tokens_expected)
        body = self.body(api, prompt, max_tokens, temperature, ignore_eos)
        arrivals: list[float] = []
        t0 = time.perf_counter()
        rec.t_send = time.time()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._stream(rec, body, arrivals)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:
            rec.error_type = classify(exc)
            rec.error = f"{type(exc).__name__}: {exc}"[:500]
        t_end = time.perf_counter()
        rec.t_end = rec.t_send + (t_end - t0)
        rec.total_s = t_end - t0
        if arrivals:
            rec.ttft_s = arrivals[0] - t0
            rec.itl_s = [b - a for a, b in zip(arrivals, arrivals[1:])]
            rec.e2e_s = arrivals[-1] - t0
        return rec

    async def _stream(self, rec: RequestRecord, body: dict[str, Any], arrivals: list[float]) -> None:
        done = False
        async with self._http.post(self.base_url + PATHS[rec.api], json=body) as resp:
            rec.http_status = resp.status
            if resp.status != 200:
                text = (await resp.read()).decode(errors="replace")
                rec.error_type = f"http_{resp.status}"
                rec.error = _error_message(text)
                return
            # one server-sent event line at a time (b"data: {...}\n", then a blank line)
            async for line in resp.content:
                now = time.perf_counter()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:  # vLLM reports errors inside the stream after a 200
                    rec.error_type = "stream_error"
                    rec.error = _error_message(data.decode(errors="replace"))
                    return
                usage = chunk.get("usage")
                choices = chunk.get("choices") or []
                n = 0
                if usage and usage.get("completion_tokens") is not None:
                    n = int(usage["completion_tokens"]) - rec.output_tokens
                    rec.counts_from = rec.counts_from or "usage"
                    rec.prompt_tokens = usage.get("prompt_tokens", rec.prompt_tokens)
                elif choices and _has_content(choices[0]):
                    n = 1
                    rec.counts_from = "chunks"  # per chunk an assumption; a final usage chunk corrects the total
                if choices and choices[0].get("finish_reason"):
                    rec.finish_reason = choices[0]["finish_reason"]
                if n > 0:
                    rec.output_tokens += n
                    if choices:  # not the final usage-only chunk
                        arrivals.append(now)
                        rec.chunk_tokens.append(n)
        if not done:
            rec.error_type = "incomplete_stream"
            rec.error = "the stream ended without [DONE]"


def _has_content(choice: dict[str, Any]) -> bool:
    if "text" in choice:
        return bool(choice["text"])
    delta = choice.get("delta") or {}
    return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"))


def _error_message(text: str) -> str:
    try:
        err = json.loads(text)
        err = err.get("error", err) if isinstance(err, dict) else err
        if isinstance(err, dict):
            return str(err.get("message") or err)[:500]
        return str(err)[:500]
    except json.JSONDecodeError:
        return text[:500]
