"""What one server measurement is asked to do: an engine served by ``vllm serve``
and the load it is put under, as typed models that travel as JSON."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..engine.spec import EngineSpec, Frozen


class LoadLevels(Frozen):
    levels: tuple[float, ...]
    requests_per_level: int = Field(gt=0)


class SteadyState(Frozen):
    """Each load level measures a steady-state window (``serving.window``): it keeps
    sending until the window lasts ``min_s`` and holds ``per_user`` x the concurrency
    in completed requests, or until ``max_s`` (then the level is marked short)."""

    min_s: float = Field(gt=0)
    per_user: int = Field(ge=1)
    max_s: float = Field(gt=0)
    overload_s: float | None = Field(None, gt=0)  # open loop: stop past capacity (window.overloaded)


OtherTool = Literal["bench_serve", "guidellm"]


class BenchServeCheck(Frozen):
    """Our client and other tools (``vllm bench serve``, GuideLLM) against the same
    server, closed loop at each concurrency with the same prompts, their order
    rotated over levels and rounds (ABBA for two tools)."""

    concurrency: tuple[int, ...]
    requests: int = Field(gt=0)
    rounds: int = Field(1, ge=1)
    tools: tuple[OtherTool, ...] = ("bench_serve",)
    per_user: int = Field(0, ge=0)

    def requests_at(self, concurrency: int) -> int:
        """Requests one level sends: ``requests``, or ``per_user`` for each user where that is
        more, so a busy level holds many waves of requests, not a ramp and a drain."""
        return max(self.requests, self.per_user * concurrency)

    @property
    def all_tools(self) -> tuple[str, ...]:
        return ("slmstudy", *self.tools)

    def order(self, round_: int, level_index: int) -> tuple[str, ...]:
        """The tools' order at one level of one round: rotated by one per level and
        per round, so each tool goes first, middle and last equally often over the
        rounds and slow drifts of the host cancel (two tools: ABBA)."""
        tools = self.all_tools
        k = (round_ + level_index + 1) % len(tools)
        return tools[k:] + tools[:k]


class LoadSpec(Frozen):
    api: Literal["chat", "completions"] = "chat"
    input_tokens: int = Field(128, gt=0)
    output_tokens: int = Field(128, gt=0)
    temperature: float = 0.0
    warmup_requests: int = Field(0, ge=0)
    closed_loop: LoadLevels | None = None  # concurrent users
    open_loop: LoadLevels | None = None  # Poisson arrivals, requests per second
    slo_ttft_s: float = Field(0.2, gt=0)
    request_timeout_s: float = Field(600.0, gt=0)
    # Article 000's own client calls (the openai package), made against the
    # measured server after its load and recorded for the notebook to show.
    client_demo: bool = True
    # vLLM's /metrics read at the telemetry rate and at each level's edges: the
    # scheduler's view (running, waiting, KV cache, preemptions, engine steps).
    server_metrics: bool = True
    bench_serve: BenchServeCheck | None = None
    # None: each level sends requests_per_level and its statistics cover them all
    steady: SteadyState | None = None


class ServeJob(Frozen):
    kind: Literal["serve"] = "serve"
    engine: EngineSpec
    load: LoadSpec
    timeout_s: float = Field(3600.0, gt=0)

    @property
    def key(self) -> str:
        return f"{self.engine.key}__serve"

    def satisfies(self, need: "ServeJob") -> bool:
        return self == need
