"""The engine core's own clock, read in the measuring process.

Every batch of outputs vLLM's engine core sends carries the core's timestamp of
the step that made it (``EngineCoreOutputs.timestamp``, ``time.monotonic()`` in
the core process; vLLM 0.26 and 0.32 alike). On Linux ``CLOCK_MONOTONIC`` is one
clock for every process of the host, so the measuring process can put the core's
moment next to its own: how long after the core made the last token of a run our
harness held it. That delay is the harness's own cost, measured inside each run
in milliseconds, where a whole-run A/B of throughput drowns in the host's run-to-run
spread (10-30% on the lent H100, against a 1% target).

The clock wraps the engine client's ``get_output_async`` on the instance: vLLM's
output handler looks the method up on every loop, so no vLLM class is touched and
an engine without the clock runs exactly as before. Only the harness check attaches
it (the sweep's runs never pay for the wrapper); both of its modes run with it. The
one call vLLM's handler was already awaiting when the clock was attached returns
unrecorded: the first run after it misses its first batch, never its last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Batch:
    """One batch of outputs: the core's step time and when this process received it."""

    core_s: float  # time.monotonic() in the engine core when the step's outputs were made
    received_s: float  # time.monotonic() here when the output handler took them
    outputs: int  # request outputs in the batch


class CoreClock:
    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def attach(self, engine: Any) -> bool:
        """Wrap ``engine.engine_core.get_output_async``; False where this vLLM has none."""
        core = getattr(engine, "engine_core", None)
        get = getattr(core, "get_output_async", None)
        if get is None:
            return False
        batches = self.batches

        async def timed() -> Any:
            out = await get()
            outputs = getattr(out, "outputs", None)
            stamp = getattr(out, "timestamp", 0.0)
            if outputs and stamp:  # stats-only messages carry no tokens
                batches.append(Batch(float(stamp), time.monotonic(), len(outputs)))
            return out

        core.get_output_async = timed
        return True

    def mark(self) -> int:
        """Where the next run's batches begin."""
        return len(self.batches)

    def since(self, mark: int) -> list[Batch]:
        return self.batches[mark:]


def delivery(batches: list[Batch], start_s: float, done_s: float) -> dict[str, float]:
    """One run's timing on both clocks (``start_s``: the first submit, ``done_s``: the
    moment the harness held every output, both ``time.monotonic()`` here).

    ``core_wall_s`` is the core's part: submit to the step that made the last token.
    ``lag_s`` is the rest: from that step to the harness holding the output (the
    core's send, transport, vLLM's output processing and our own per-token work), so
    ``core_wall_s + lag_s`` is the run's wall time. ``transport_s`` is the part of the
    lag before the output handler received the last batch."""
    nan = float("nan")
    if not batches:
        return {"core_wall_s": nan, "lag_s": nan, "transport_s": nan, "core_batches": 0}
    last = max(batches, key=lambda b: b.core_s)
    return {"core_wall_s": last.core_s - start_s, "lag_s": done_s - last.core_s,
            "transport_s": last.received_s - last.core_s, "core_batches": len(batches)}
