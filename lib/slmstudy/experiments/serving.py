"""04_serving: the articles' deployment, vLLM's OpenAI-compatible server, under load.

Per model, one ``vllm serve`` process group with the same engine arguments as
the offline runs. A streaming client sends chat completions:

* closed loop: C users, each sending its next request when the last one ends;
* open loop: requests arriving as a Poisson process at a given rate, whatever
  the server's state (how real traffic behaves; queues build up past capacity).

Per load level: throughput, TTFT / inter-token / end-to-end percentiles, errors
by type, and goodput under the articles' objective (first token within 200 ms).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pandas as pd
from pydantic import Field, PositiveFloat, PositiveInt

from ..figures import styled
from ..jobs import Job
from ..params import MAX_LIST, PrecisionKey, Strict, StudyParams, Tokens, Workload
from ..serving.spec import BenchServeCheck, LoadLevels, LoadSpec, OtherTool, ServeJob, SteadyState
from .base import Experiment, Study
from .common import engine_spec

NOTEBOOK = "04_serving"


class ClosedLoop(Strict):
    concurrency: list[PositiveInt] = Field(min_length=1, max_length=MAX_LIST)
    requests_per_level: PositiveInt = Field(32, le=100_000)


class OpenLoop(Strict):
    rates: list[PositiveFloat] = Field(min_length=1, max_length=MAX_LIST)  # requests per second
    requests_per_level: PositiveInt = Field(32, le=100_000)


class SteadyStateParams(Strict):
    """Each level sends until its steady-state window (after every user's first
    request, before the level stops sending) lasts ``min_s`` and holds ``per_user`` x
    the concurrency in completed requests, or until ``max_s``; its statistics count
    the window's requests only (``serving.window``). requests_per_level is then unused."""

    min_s: PositiveFloat = Field(20.0, le=3600)
    per_user: PositiveInt = Field(10, le=10_000)
    max_s: PositiveFloat = Field(120.0, le=7200)
    # Open loop: stop a level once more than overload_s seconds of its arrivals are outstanding
    # (past the server's capacity: on the H100 DeepSeek's 128 req/s level ran to max_s, 138 s,
    # its queue growing to a 10.9 s median first token, and 505 requests timed out connecting).
    overload_s: PositiveFloat | None = Field(None, le=3600)


class BenchServe(Strict):
    """Cross-check against ``vllm bench serve`` (and GuideLLM, with ``tools``): closed
    loop at each concurrency, the same prompts, lengths and temperature for every
    tool, their order rotated (ABBA for two) over levels and rounds against the same
    server after the sweeps."""

    concurrency: list[PositiveInt] = Field(min_length=1, max_length=8)
    # the tools beside our client
    tools: list[OtherTool] = Field(default_factory=lambda: ["bench_serve"], min_length=1, max_length=2)
    requests: PositiveInt = Field(64, le=100_000)
    # At least this many requests per user at each level (0: ``requests`` everywhere). On the
    # H100 (2c892d5) 64 requests at 32 users lasted 0.9 s, two waves: ramp and drain only, and
    # three rounds of it scattered the time to first token by +-25%.
    per_user: int = Field(0, ge=0, le=1_000)
    rounds: PositiveInt = Field(2, le=20)
    # Agreement per figure: within tolerance_pct, or (3 rounds or more) a 95% CI
    # that holds zero and is narrower than +-tolerance_pct.
    tolerance_pct: float = Field(5.0, gt=0)


class Params(StudyParams):
    precision: PrecisionKey = "bf16"
    api: Literal["chat", "completions"] = "chat"  # the articles call chat completions
    input_tokens: Tokens = 128
    output_tokens: Tokens = 128
    temperature: float = Field(0.6, ge=0, le=10)
    warmup_requests: int = Field(4, ge=0, le=10_000)
    closed_loop: ClosedLoop | None = None
    open_loop: OpenLoop | None = None
    slo_ttft_s: PositiveFloat = 0.2  # "average latency < 200 ms" (article 000)
    request_timeout_s: PositiveFloat = 600.0
    # vLLM's /metrics read at the telemetry rate and at each level's edges (off: to measure what reading it costs)
    server_metrics: bool = True
    bench_serve: BenchServe | None = None
    steady_state: SteadyStateParams | None = None  # None: each level is requests_per_level, all counted

    def precision_fields(self) -> list[tuple[str, str]]:
        return [("precision", self.precision)]

    def check(self) -> list[Any]:
        """A closed-loop level with fewer requests than users never has them all in flight."""
        from ..params import Problem

        out = []
        if self.closed_loop and self.closed_loop.requests_per_level < max(self.closed_loop.concurrency):
            out.append(Problem(("closed_loop.requests_per_level", "closed_loop.concurrency"),
                               f"{self.closed_loop.requests_per_level} is below the largest concurrency "
                               f"{max(self.closed_loop.concurrency)}: that level could never have all its users in "
                               "flight"))
        if self.steady_state and self.steady_state.max_s < self.steady_state.min_s:
            out.append(Problem(("steady_state.max_s", "steady_state.min_s"),
                               f"{self.steady_state.max_s} is below min_s {self.steady_state.min_s}: no window could "
                               "ever last long enough"))
        if self.bench_serve and self.bench_serve.requests < max(self.bench_serve.concurrency):
            out.append(Problem(("bench_serve.requests", "bench_serve.concurrency"),
                               f"{self.bench_serve.requests} is below the largest concurrency "
                               f"{max(self.bench_serve.concurrency)}: that level could never have all its users in "
                               "flight"))
        return out

    def workload_fields(self) -> list[tuple[str, Workload]]:
        # a chat prompt adds the template's 4 tokens
        batch = self.max_concurrency()
        return [("input_tokens", Workload(input_len=self.input_tokens + 4, output_len=self.output_tokens,
                                          batch_sizes=[batch]))]


    def max_concurrency(self) -> int:
        return max([*(self.closed_loop.concurrency if self.closed_loop else [1]),
                    *(self.bench_serve.concurrency if self.bench_serve else [])])


def load_spec(p: Params) -> LoadSpec:
    return LoadSpec(
        api=p.api, input_tokens=p.input_tokens, output_tokens=p.output_tokens, temperature=p.temperature,
        warmup_requests=p.warmup_requests, slo_ttft_s=p.slo_ttft_s, request_timeout_s=p.request_timeout_s,
        server_metrics=p.server_metrics,
        bench_serve=BenchServeCheck(concurrency=tuple(p.bench_serve.concurrency), requests=p.bench_serve.requests,
                                    rounds=p.bench_serve.rounds, tools=tuple(dict.fromkeys(p.bench_serve.tools)),
                                    per_user=p.bench_serve.per_user)
        if p.bench_serve else None,
        closed_loop=LoadLevels(levels=tuple(float(c) for c in p.closed_loop.concurrency),
                               requests_per_level=p.closed_loop.requests_per_level) if p.closed_loop else None,
        open_loop=LoadLevels(levels=tuple(p.open_loop.rates), requests_per_level=p.open_loop.requests_per_level)
        if p.open_loop else None,
        steady=SteadyState(min_s=p.steady_state.min_s, per_user=p.steady_state.per_user, max_s=p.steady_state.max_s,
                           overload_s=p.steady_state.overload_s)
        if p.steady_state else None)


def jobs(p: Params) -> list[Job]:
    """Per model one ``vllm serve`` with the offline runs' engine arguments, loaded
    in closed and open loop; article 000's own client calls at the end."""
    max_batch = p.max_concurrency()
    return [ServeJob(engine=engine_spec(p, model, p.precision, max_batch), load=load_spec(p),
                     timeout_s=p.config_timeout_s) for model in p.models]


EXPERIMENT = Experiment(NOTEBOOK, "Serving", Params, jobs)


# ------------------------------------------------------------------ analysis
LEVEL_COLUMNS = ["model", "mode", "level", "status", "window", "window_s", "window_short", "warmup_excluded",
                 "drain_excluded", "completed", "errors", "req_s", "output_tok_s",
                 "ttft_mean_s", "ttft_p50_s", "ttft_p90_s", "ttft_p90_lo_s", "ttft_p90_hi_s", "ttft_p99_s",
                 "ttft_p99_lo_s", "ttft_p99_hi_s", "itl_p50_s", "itl_p50_lo_s", "itl_p50_hi_s", "itl_p99_s",
                 "e2e_mean_s", "e2e_p99_s", "slo_met_share", "goodput_req_s", "j_per_output_token",
                 "j_per_output_token_above_idle",
                 "gpm_sm_active_pct_mean", "util_gpu_pct_mean", "proc_cpu_pct_mean", "error_counts"]


def levels(study: Study[Params]) -> pd.DataFrame:
    df = study.table("levels")
    return df[[c for c in LEVEL_COLUMNS if c in df]] if not df.empty else df


def in_flight(levels: pd.DataFrame) -> pd.Series:
    """Requests in flight at a closed-loop level: its users, but never more than
    the requests it sends (older runs sent fewer requests than users)."""
    return levels[["level", "requests"]].min(axis=1)


def slo_capacity(study: Study[Params]) -> pd.DataFrame:
    """The largest load at which each model still meets the objective (mean and
    p90 TTFT within ``slo_ttft_s``), per load mode, and the first load that breaks it."""
    df = study.table("levels")
    if df.empty:
        return df
    slo = study.params.slo_ttft_s
    rows = []
    for (model, mode), g in df.groupby(["model", "mode"]):
        g = g.sort_values("level")
        if mode == "concurrency":
            g = g.assign(level=in_flight(g))
        ok = g[(g["status"] != "failed") & (g["ttft_mean_s"] <= slo)]
        ok90 = g[(g["status"] != "failed") & (g["ttft_p90_s"] <= slo)]
        # surely met: the p90's 95% bootstrap interval lies inside the objective
        sure90 = ok90[ok90["ttft_p90_hi_s"] <= slo] if "ttft_p90_hi_s" in ok90 else ok90.iloc[0:0]
        broken = g[~g.index.isin(ok.index)]
        rows.append({"model": model, "mode": mode, "slo_ttft_ms": 1000 * slo,
                     "max load meeting mean TTFT": ok["level"].max() if len(ok) else None,
                     "max load meeting p90 TTFT": ok90["level"].max() if len(ok90) else None,
                     "max load meeting p90 TTFT, whole 95% CI": sure90["level"].max() if len(sure90) else None,
                     "first load breaking it": broken["level"].min() if len(broken) else None,
                     "goodput at max load (req/s)": g["goodput_req_s"].iloc[-1]})
    return pd.DataFrame(rows)


@styled
def figure_latency_throughput(study: Study[Params]) -> Any:
    """Latency against throughput: each point a load level, one line per model and mode."""
    import matplotlib.pyplot as plt

    from .. import figures

    df = study.table("levels")
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.4))
    for (model, mode), g in df.groupby(["model", "mode"], sort=False):
        g = g[g["status"] != "failed"].sort_values("level")
        label = f"{figures.model_name(model)}, {'closed loop' if mode == 'concurrency' else 'Poisson arrivals'}"
        style = "o-" if mode == "concurrency" else "s--"
        axes[0].plot(g["output_tok_s"], 1000 * g["ttft_p50_s"], style, label=label)
        axes[1].plot(g["output_tok_s"], 1000 * g["itl_p50_s"], style, label=label)
        axes[2].plot(g["output_tok_s"], 1000 * g["e2e_p99_s"], style, label=label)
        for _, r in g.iterrows():
            axes[0].annotate(_level(r["level"], mode), (r["output_tok_s"], 1000 * r["ttft_p50_s"]), fontsize=6)
    _objective(axes[0], study.params.slo_ttft_s)
    for ax, title in zip(axes, ("TTFT p50 (ms)", "inter-token latency p50 (ms)", "end-to-end p99 (ms)")):
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel(title)
        ax.set_yscale("log")
    fig.suptitle("Serving: latency against throughput (labels: concurrent users, or requests per second)")
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    figures.legend_outside(fig, *axes[0].get_legend_handles_labels())
    return figures.finish(fig, study, "serving_latency_throughput", study.caption(study.params.precision))


@styled
def figure_distributions(study: Study[Params]) -> Any:
    """TTFT and inter-token latency distributions at each closed-loop concurrency."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .. import figures

    req = study.table("requests")
    req = req[(req["mode"] == "concurrency") & req["error_type"].isna()] if not req.empty else req
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.4))
    if req.empty:
        return figures.finish(fig, study, "serving_distributions", study.caption())
    req = req.assign(users=req["level"].astype(int), model=req["model"].map(figures.model_name))
    sns.boxplot(req.assign(ttft_ms=1000 * req["ttft_s"]), x="users", y="ttft_ms", hue="model", ax=axes[0], fliersize=1)
    if "itl_s" in req:
        itl = req[["model", "users", "itl_s"]].explode("itl_s").dropna()
        sns.boxplot(itl.assign(itl_ms=1000 * itl["itl_s"].astype(float)), x="users", y="itl_ms", hue="model",
                    ax=axes[1], fliersize=1)
    _objective(axes[0], study.params.slo_ttft_s)
    for ax, label in zip(axes, ("time to first token (ms)", "inter-token latency (ms)")):
        ax.set_yscale("log")
        ax.set_xlabel("concurrent users")
        ax.set_ylabel(label)
        if ax.get_legend():
            ax.get_legend().remove()
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    figures.legend_outside(fig, *axes[0].get_legend_handles_labels())
    return figures.finish(fig, study, "serving_distributions", study.caption(study.params.precision))


CROSSCHECK_METRICS = ["ttft_p50_s", "ttft_p90_s", "itl_p50_s", "tpot_p50_s", "output_tok_s"]
TOOL_NAMES = {"bench_serve": "vllm bench serve", "guidellm": "GuideLLM"}


def bench_serve_check(study: Study[Params]) -> pd.DataFrame:
    """Our client against ``vllm bench serve`` (and GuideLLM) on the same server: per
    model, level, tool and figure, the medians over rounds, the difference, its CI
    and verdict."""
    b = study.params.bench_serve
    if b is None:
        return pd.DataFrame([{"note": "not measured: this profile sets bench_serve: null"}])
    return bench_serve_rows(study.table("serve_crosscheck"), b.tolerance_pct)


def bench_serve_rows(df: pd.DataFrame, tolerance_pct: float) -> pd.DataFrame:
    """The cross-check table from its rows (model, round, tool slmstudy / bench_serve /
    guidellm, level, status and the figures of ``CROSSCHECK_METRICS``): one row per
    model, level, other tool and figure, ``slmstudy`` and ``other`` the medians over
    rounds. A figure the other tool does not report (GuideLLM has no pooled chunk
    gaps) is named, not compared."""
    from .. import stats

    if df.empty:
        return df
    rows = []
    ok = df[df["status"] == "ok"]
    for (model, level), g in ok.groupby(["model", "level"], sort=True):
        for tool in sorted(set(g["tool"]) - {"slmstudy"}):
            pair = g[g["tool"].isin(["slmstudy", tool])]
            for metric in CROSSCHECK_METRICS:
                base = {"model": model, "level": level, "tool": tool, "metric": metric}
                if metric not in pair or pair.loc[pair["tool"] == tool, metric].isna().all():
                    rows.append({**base, "verdict": "not reported",
                                 "why": f"{TOOL_NAMES.get(tool, tool)} does not report {metric}"})
                    continue
                by_round = pair.pivot_table(index="round", columns="tool", values=metric, aggfunc="first")
                if not {"slmstudy", tool} <= set(by_round.columns):
                    continue
                by_round = by_round.dropna()
                d = stats.relative_difference_ci([[v] for v in by_round["slmstudy"]],
                                                 [[v] for v in by_round[tool]])
                rows.append({**base, "slmstudy": float(by_round["slmstudy"].median()),
                             "other": float(by_round[tool].median()),
                             "median_difference_pct": d["difference_pct"], "difference_ci_lo": d["ci_lo"],
                             "difference_ci_hi": d["ci_hi"], "rounds": d["rounds"],
                             "verdict": stats.agreement_verdict(d["difference_pct"], d["ci_lo"], d["ci_hi"],
                                                                tolerance_pct, tolerance_pct)})
    failed = df[df["status"] != "ok"]
    for _, r in failed.iterrows():
        rows.append({"model": r["model"], "level": r["level"], "tool": r["tool"], "metric": "(run failed)",
                     "verdict": "not measured", "why": f"{r['tool']} round {r['round']}: {r.get('error')}"})
    return pd.DataFrame(rows)


def bench_serve_verdict(df: pd.DataFrame, tolerance_pct: float) -> str:
    """One sentence per other tool: how many figures agree, and the largest difference."""
    if df.empty or "verdict" not in df:
        return str(df["note"].iloc[0]) if "note" in df and len(df) else "not measured"
    parts = []
    for tool, t in df.groupby("tool", sort=True):
        compared = t[t["verdict"] != "not reported"]
        counts = compared["verdict"].value_counts()
        name = TOOL_NAMES.get(tool, tool)
        text = (f"{counts.get('agrees', 0)} of {len(compared)} figures agree with {name} within {tolerance_pct:g}% "
                f"({counts.get('differs', 0)} differ, {counts.get('inconclusive', 0)} inconclusive, "
                f"{counts.get('not measured', 0)} not measured)")
        diffs = compared["median_difference_pct"] if "median_difference_pct" in compared else pd.Series(dtype=float)
        if diffs.notna().any():
            worst = compared.loc[diffs.abs().idxmax()]
            text += (f"; the largest difference is {worst['metric']} at {worst['level']:g} users for "
                     f"{worst['model']}: {worst['median_difference_pct']:+.1f}%")
        parts.append(text)
    return "; ".join(parts) + "."


def tool_cpu(df: pd.DataFrame) -> pd.DataFrame:
    """Each tool's own CPU per cross-check level, in cores: its CPU seconds over the time
    they were counted in (ours: the level's span; another tool's: its whole run in the
    host, set-up included, as its CPU is), the median over rounds. On a host whose CPU
    paces decoding, a load generator that takes more of it can slow the server it
    measures. Empty where the rows carry no CPU (folders before the column)."""
    if df.empty or "client_cpu_s" not in df or df["client_cpu_s"].isna().all():
        return pd.DataFrame()
    ok = df[(df["status"] == "ok") & df["client_cpu_s"].notna()].copy()
    # ours has no host run: its span is the level's; another tool's CPU covers its whole run
    span = ok["duration_s"].where(ok["tool"] == "slmstudy", ok.get("seconds"))
    ok["cores"] = ok["client_cpu_s"] / span
    return (ok.groupby(["model", "level", "tool"], sort=True)["cores"].median().rename("client_cores")
            .reset_index())


def tool_cpu_sentence(cpu: pd.DataFrame) -> str:
    """The busiest level's CPU of each tool, ours first: one sentence ('' without rows)."""
    if cpu.empty:
        return ""
    parts = []
    for model, m in cpu.groupby("model", sort=True):
        top = m[m["level"] == m["level"].max()].set_index("tool")["client_cores"]
        order = ["slmstudy", *sorted(set(top.index) - {"slmstudy"})]
        tools = ", ".join(f"{'ours' if t == 'slmstudy' else TOOL_NAMES.get(t, t)} {top[t]:.2f}"
                          for t in order if t in top)
        parts.append(f"at {m['level'].max():g} users {tools} ({model})")
    return ("Each tool's own CPU in cores, median of rounds (ours over the level's span, another tool over its "
            "whole run, its set-up included): " + "; ".join(parts) + ".")


def paired_pace(df: pd.DataFrame, other: str = "bench_serve") -> pd.DataFrame:
    """Per model and level, the rounds in which our client's level ran at a higher output
    rate than ``other``'s beside the same server (``faster`` of ``rounds``). Every tool sends
    the same prompts and output lengths, so the server's pace should not depend on which
    tool drives it: one side faster in every round is a tool's influence on the server (its
    own CPU on a host whose CPU paces decoding, say), not the host's drift between runs,
    which favours either side. Empty without both tools' ok rows."""
    if df.empty or "tool" not in df:
        return pd.DataFrame()
    ok = df[df["status"] == "ok"]
    keys = ["model", "level", "round"]
    pair = ok[ok["tool"] == "slmstudy"].merge(ok[ok["tool"] == other], on=keys, suffixes=("", "_other"))
    if pair.empty:
        return pd.DataFrame()
    pair["faster"] = pair["output_tok_s"] > pair["output_tok_s_other"]
    return (pair.groupby(["model", "level"], sort=True)
            .agg(rounds=("faster", "size"), faster=("faster", "sum")).reset_index())


def paired_pace_sentence(pace: pd.DataFrame, other: str = "bench_serve") -> str:
    """``paired_pace`` in one sentence ('' without rows)."""
    if pace.empty:
        return ""
    parts = [f"{model}: " + ", ".join(f"{r.level:g} user{'s' if r.level != 1 else ''} {r.faster} of {r.rounds}" for r in m.itertuples())
             for model, m in pace.groupby("model", sort=True)]
    return (f"Rounds in which our client's level ran at a higher output rate than "
            f"{TOOL_NAMES.get(other, other)}'s beside the same server: " + "; ".join(parts) + ".")


def sent_failures(requests: pd.DataFrame) -> pd.DataFrame:
    """Per model, mode and level, every request the level sent (warm-up and drain included,
    which its statistics leave out: a level's ``errors`` count its window only) and how many
    of them failed."""
    if requests.empty or "ok" not in requests:
        return pd.DataFrame(columns=["model", "mode", "level", "sent", "failed"])
    failed = ~requests["ok"].astype("boolean").fillna(False).astype(bool)
    g = requests.assign(failed=failed).groupby(["model", "mode", "level"], sort=True)["failed"]
    return pd.DataFrame({"sent": g.size(), "failed": g.sum().astype(int)}).reset_index()


def crosscheck_sentence(check: pd.DataFrame, rows: pd.DataFrame, tolerance_pct: float) -> str:
    """The cross-check's verdict (``check``: ``bench_serve_rows``), which tool the server ran
    faster beside and each tool's own CPU, from its ``rows``: what the notebook and the
    README's line say."""
    return " ".join(filter(None, [bench_serve_verdict(check, tolerance_pct), paired_pace_sentence(paired_pace(rows)),
                                  tool_cpu_sentence(tool_cpu(rows))]))


def slo_verdict(capacity: pd.DataFrame) -> str:
    """Where each model stops meeting the objective, in one sentence."""
    if capacity.empty:
        return "no load level was measured"
    parts = []
    for _, r in capacity.iterrows():
        unit = "concurrent users" if r["mode"] == "concurrency" else "requests/s"
        best = r["max load meeting mean TTFT"]
        broke = r["first load breaking it"]
        parts.append(f"{r['model']} ({'closed loop' if r['mode'] == 'concurrency' else 'Poisson'}): mean TTFT within "
                     f"{r['slo_ttft_ms']:g} ms up to {best if best == best and best is not None else 'no'} {unit}"
                     + (f", broken at {broke:g}" if broke == broke and broke is not None else ", at every load tested"))
    return "; ".join(parts) + "."


def _level(level: float, mode: str) -> str:
    """Users are whole numbers; rates may not be."""
    return f"{int(level)}" if mode == "concurrency" else f"{level:g}/s"


def _objective(ax: Any, slo_s: float) -> None:
    """The latency objective, drawn and named where it applies."""
    ax.axhline(1000 * slo_s, color="red", lw=0.9, ls=":", label=f"{1000 * slo_s:g} ms objective")
    ax.text(1.0, 1000 * slo_s, f" {1000 * slo_s:g} ms objective", color="red", fontsize=7, va="bottom", ha="right",
            transform=ax.get_yaxis_transform())


def client_demo(study: Study[Params]) -> dict[str, Any]:
    """What article 000's own client calls returned from each measured server."""
    return {key: json.loads(path.read_text()) for key, path in study.folder.config_files("client_demo.json").items()}
