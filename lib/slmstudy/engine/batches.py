"""One batch of requests through vLLM's async engine, timed: the prompts, the
sampling every measured run uses, and the two ways of collecting a batch's
outputs (each token as it arrives, timed; or the final output only)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import numpy as np


# Prompt token IDs are drawn from this range: valid in every catalog vocabulary
# and clear of the special tokens at the top of Qwen2's and Llama 3's vocabularies.
TOKEN_LOW, TOKEN_HIGH = 1000, 100_000


def prompt_ids(seed: int, tag: int, batch: int, input_len: int, vocab: int) -> list[list[int]]:
    """Deterministic, distinct random prompts (no shared prefixes, so no cache hits)."""
    rng = np.random.default_rng([seed, tag & 0xFFFFFFFF, tag >> 32])
    high = min(TOKEN_HIGH, vocab)
    return rng.integers(TOKEN_LOW, high, size=(batch, input_len)).tolist()


class Stream:
    """What one request's token stream looked like, in perf_counter seconds."""

    __slots__ = ("submit", "arrivals", "counts", "finished")

    def __init__(self) -> None:
        self.submit = 0.0
        self.arrivals: list[float] = []
        self.counts: list[int] = []
        self.finished = False

    def summary(self, t0: float) -> dict[str, Any]:
        n = sum(self.counts)
        first = self.arrivals[0] if self.arrivals else float("nan")
        last = self.arrivals[-1] if self.arrivals else float("nan")
        gaps = np.diff(self.arrivals).astype(np.float32) if len(self.arrivals) > 1 else np.zeros(0, np.float32)
        return {
            "submit_offset_s": self.submit - t0,
            "ttft_s": first - self.submit,
            "e2e_s": last - self.submit,
            "output_tokens": n,
            "chunks": len(self.arrivals),
            # Time per output token after the first: the decode speed one user sees.
            "tpot_s": (last - first) / (n - 1) if n > 1 else float("nan"),
            "itl_s": gaps.tolist(),
        }


async def _request(engine: Any, ids: list[int], sp: Any, rid: str) -> Stream:
    from vllm.inputs import TokensPrompt

    s = Stream()
    s.submit = time.perf_counter()
    async for out in engine.generate(TokensPrompt(prompt_token_ids=ids), sp, request_id=rid):
        now = time.perf_counter()
        n = len(out.outputs[0].token_ids)  # DELTA outputs: only the new tokens
        if n:
            s.arrivals.append(now)
            s.counts.append(n)
        if out.finished:
            s.finished = True
            break
    return s


def sampling(output_len: int, temperature: float, final_only: bool = False) -> Any:
    """A measured run's sampling: exactly ``output_len`` tokens, no detokenising;
    streamed as deltas, or only the final output."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        max_tokens=output_len,
        ignore_eos=True,  # fixed output length whatever the weights say
        temperature=temperature,
        output_kind=RequestOutputKind.FINAL_ONLY if final_only else RequestOutputKind.DELTA,
        detokenize=False,
    )


def abba(pair: int, a: Any, b: Any) -> tuple[Any, Any]:
    """The order of pair ``pair`` of an A/B check: AB, BA, AB, ... so slow drifts cancel."""
    return (a, b) if pair % 2 == 0 else (b, a)


async def run_batch(engine: Any, prompts: list[list[int]], output_len: int, temperature: float, tag: str) -> dict[str, Any]:
    """Submit all prompts at once and time every token as it arrives."""
    sp = sampling(output_len, temperature)
    t0 = time.perf_counter()
    streams = await asyncio.gather(
        *(_request(engine, ids, sp, f"{tag}-{i}-{uuid.uuid4().hex[:6]}") for i, ids in enumerate(prompts))
    )
    t_end = max((s.arrivals[-1] for s in streams if s.arrivals), default=time.perf_counter())
    wall = t_end - t0
    requests = [s.summary(t0) for s in streams]
    tokens = sum(r["output_tokens"] for r in requests)
    return {
        "wall_s": wall,
        "output_tokens": tokens,
        "input_tokens": sum(len(p) for p in prompts),
        "output_tok_s": tokens / wall if wall > 0 else float("nan"),
        "req_per_min": 60 * len(prompts) / wall if wall > 0 else float("nan"),
        "short_outputs": sum(1 for r in requests if r["output_tokens"] != output_len),
        "requests": requests,
    }


async def run_batch_final(engine: Any, prompts: list[list[int]], output_len: int, temperature: float,
                          tag: str) -> dict[str, Any]:
    """The same batch, but each request yields its final output only (as
    ``vllm bench latency``'s ``LLM.generate`` does): no per-token output objects,
    no per-token timing. Wall time: first submit to the last final output."""
    from vllm.inputs import TokensPrompt

    sp = sampling(output_len, temperature, final_only=True)

    async def one(ids: list[int], rid: str) -> int:
        n = 0
        async for out in engine.generate(TokensPrompt(prompt_token_ids=ids), sp, request_id=rid):
            n = len(out.outputs[0].token_ids)
        return n

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(one(ids, f"{tag}-{i}-{uuid.uuid4().hex[:6]}") for i, ids in enumerate(prompts)))
    return final_result(list(counts), time.perf_counter() - t0, output_len)


def final_result(counts: list[int], wall: float, output_len: int) -> dict[str, Any]:
    """A final-outputs-only run's record from each request's token count and its wall time."""
    tokens = sum(counts)
    return {"wall_s": wall, "output_tokens": tokens, "output_tok_s": tokens / wall if wall > 0 else float("nan"),
            "short_outputs": sum(1 for n in counts if n != output_len)}
