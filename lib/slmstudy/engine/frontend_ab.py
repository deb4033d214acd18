"""The front-end A/B (``spec.FrontendCheck``): inside one engine process, vLLM's
``AsyncLLM`` (what our harness drives) against ``LLM`` (whose ``generate``
``vllm bench latency`` times), each with its own engine core of the same
arguments, on the same GPU.

Why: across fresh processes our engine took more host CPU than bench latency's
and kept the GPU busy less of the time (the 03 layer's pairs), and the two tools
differ by more than the host's spread allows for Llama. Fresh processes cannot
say whether that is the front end or the host of the moment; runs alternating
inside one process can, because both front ends then share the host's state.

Each pair runs every mode once per batch size, in the pair's own order of the
three (all six orders in turn), so a drift of the host falls on every mode alike.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from .batches import final_result, prompt_ids, run_batch, run_batch_final, sampling
from .journal import Journal
from .spec import FrontendCheck

ORDERS: tuple[tuple[str, ...], ...] = tuple(itertools.permutations(FrontendCheck.MODES))


def order(pair: int) -> tuple[str, ...]:
    """The modes' order in pair ``pair``: after six pairs every mode has run in
    every position twice, and before and after every other mode three times."""
    return ORDERS[pair % len(ORDERS)]


def start_llm(kwargs: dict[str, Any]) -> tuple[Any, float]:
    """The offline engine ``vllm bench latency`` builds, with these engine arguments."""
    from vllm import LLM

    t0 = time.perf_counter()
    llm = LLM(**kwargs)
    return llm, time.perf_counter() - t0


def shutdown_llm(llm: Any) -> None:
    """Stop ``llm``'s engine core now (``LLM`` has no shutdown of its own; its
    engine core would otherwise live until the process exits)."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None:
        core.shutdown()


def run_llm(llm: Any, prompts: list[list[int]], output_len: int, temperature: float) -> dict[str, Any]:
    """One ``LLM.generate`` call over the batch, timed as bench latency times it."""
    from vllm.inputs import TokensPrompt

    sp = sampling(output_len, temperature, final_only=True)
    t0 = time.perf_counter()
    outs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], sp, use_tqdm=False)
    wall = time.perf_counter() - t0
    return final_result([len(o.outputs[0].token_ids) for o in outs], wall, output_len)


async def frontend_cost(engine: Any, kwargs: dict[str, Any], seed: int, check: FrontendCheck, vocab: int,
                        journal: Journal) -> None:
    """Start ``LLM`` beside ``engine`` (an ``AsyncLLM`` of the same ``kwargs``), then
    journal every run of every pair: its mode, wall time, throughput and this
    process's CPU time (the front end's host cost; the engine cores have their own)."""
    with journal.phase("frontend_start") as extra:
        llm, extra["start_s"] = start_llm(kwargs)
    try:
        for pair in range(check.pairs):
            for batch in check.batch_sizes:
                for mode in order(pair):
                    # each run its own prompts of the same lengths: a prefix cache, if
                    # enabled, must not favour whichever mode runs later
                    tag = 9_000_000 + pair * 100_000 + batch * 4 + FrontendCheck.MODES.index(mode)
                    prompts = prompt_ids(seed, tag, batch, check.input_len, vocab)
                    with journal.phase("frontend", batch=batch, mode=mode, pair=pair):
                        t0, cpu0 = time.time(), time.process_time()
                        if mode == "llm":
                            r = run_llm(llm, prompts, check.output_len, check.temperature)
                        else:
                            run = run_batch if mode == "stream" else run_batch_final
                            r = await run(engine, prompts, check.output_len, check.temperature,
                                          f"f{pair}.{batch}.{mode}")
                        cpu = time.process_time() - cpu0
                    journal.write("frontend", pair=pair, batch=batch, mode=mode, t0=t0, wall_s=r["wall_s"],
                                  output_tokens=r["output_tokens"], output_tok_s=r["output_tok_s"],
                                  short_outputs=r["short_outputs"], main_cpu_s=cpu)
    finally:
        with journal.phase("frontend_shutdown"):
            shutdown_llm(llm)
