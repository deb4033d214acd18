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

import hashlib
import json
import shutil
from typing import Any, Literal

import pandas as pd
from pydantic import Field, PositiveFloat, PositiveInt

from ..atomic import write_json, write_table
from ..params import PrecisionKey, StudyParams, Strict, Workload
from .common import engine_dict

NOTEBOOK = "04_serving"
TABLES = ("levels", "requests", "telemetry", "phases")


class ClosedLoop(Strict):
    concurrency: list[PositiveInt] = Field(min_length=1)
    requests_per_level: PositiveInt = 32


class OpenLoop(Strict):
    rates: list[PositiveFloat] = Field(min_length=1)  # requests per second
    requests_per_level: PositiveInt = 32


class Params(StudyParams):
    precision: PrecisionKey = "bf16"
    api: Literal["chat", "completions"] = "chat"  # the articles call chat completions
    input_tokens: PositiveInt = 128
    output_tokens: PositiveInt = 128
    temperature: float = Field(0.6, ge=0)
    warmup_requests: int = Field(4, ge=0)
    closed_loop: ClosedLoop | None = None
    open_loop: OpenLoop | None = None
    slo_ttft_s: PositiveFloat = 0.2  # "average latency < 200 ms" (article 000)
    request_timeout_s: PositiveFloat = 600.0

    def precision_fields(self) -> list[tuple[str, str]]:
        return [("precision", self.precision)]

    def check(self) -> list[tuple[str, str]]:
        """A closed-loop level with fewer requests than users never has them all in flight."""
        if self.closed_loop and self.closed_loop.requests_per_level < max(self.closed_loop.concurrency):
            return [("closed_loop.requests_per_level",
                     f"{self.closed_loop.requests_per_level} is below the largest concurrency "
                     f"{max(self.closed_loop.concurrency)}: that level could never have all its users in flight")]
        return []

    def workload_fields(self) -> list[tuple[str, Workload]]:
        # a chat prompt adds the template's 4 tokens
        batch = max(self.closed_loop.concurrency) if self.closed_loop else 1
        return [("input_tokens", Workload(input_len=self.input_tokens + 4, output_len=self.output_tokens,
                                          batch_sizes=[batch]))]


def configs(p: Params) -> list[Any]:
    return []  # servers, not offline engine configurations: see run()


def config_key(p: Params, model: str) -> str:
    return f"{model}__{p.precision}__{p.weights}__serve"


def _digest(p: Params, model: str) -> str:
    blob = json.dumps({"model": model, **p.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _server(study: Any, model: str, log_path: Any) -> Any:
    from ..serving import tokenizer
    from ..serving.server import VllmServer

    p: Params = study.params
    served = tokenizer.prepare(model, p.precision, p.weights, p.weights_paths.get(model))
    engine = engine_dict(p, max(p.closed_loop.concurrency) if p.closed_loop else 256)
    return VllmServer.for_model(served, p.precision, engine, p.seed, log_path,
                                start_timeout_s=p.engine.start_timeout_s)


def _measure_model(study: Any, model: str) -> dict[str, Any]:
    from ..serving.load import Slo
    from ..serving.load import Workload as LoadWorkload
    from ..serving.measure import Measurement, SweepSpec
    from ..serving.server import ServerStartError

    p: Params = study.params
    cdir = study.dir / "servers" / model
    shutil.rmtree(cdir, ignore_errors=True)  # a retry starts clean
    cdir.mkdir(parents=True)
    status: dict[str, Any] = {"model": model, "digest": _digest(p, model)}
    w = LoadWorkload(api=p.api, input_tokens=p.input_tokens, output_tokens=p.output_tokens,
                     temperature=p.temperature, seed=p.seed, exact_counts=p.weights == "dummy")
    slo = Slo(ttft_s=p.slo_ttft_s)
    labels = {"model": model, "precision": p.precision, "config": config_key(p, model)}
    try:
        with _server(study, model, cdir / "server.log") as server:
            status["server"] = server.info()
            with Measurement(server, cdir, p.telemetry.enabled, p.telemetry.interval_ms, p.telemetry.gpu_index,
                             p.request_timeout_s, labels) as m:
                if p.closed_loop:
                    m.run(SweepSpec("concurrency", tuple(p.closed_loop.concurrency), p.closed_loop.requests_per_level,
                                    w, p.warmup_requests, slo))
                if p.open_loop:
                    m.run(SweepSpec("rate", tuple(p.open_loop.rates), p.open_loop.requests_per_level, w, 0, slo))
                tables = m.write_tables()
        levels = tables["levels"]
        failed = levels[levels["status"] == "failed"] if not levels.empty else levels
        status.update(status="ok" if failed.empty else "partial",
                      failed_levels=failed[["mode", "level", "failure"]].to_dict(orient="records"))
    except ServerStartError as exc:
        status.update(status="failed", error=str(exc), root_cause=exc.root_cause or str(exc))
    except Exception as exc:  # recorded, and the next model still runs
        status.update(status="failed", error=f"{type(exc).__name__}: {exc}", root_cause=f"{type(exc).__name__}: {exc}")
    write_json(cdir / "status.json", status)
    return status


def run(study: Any) -> pd.DataFrame:
    """Serve and load every model in turn (skipping those finished with these parameters)."""
    rows = []
    for i, model in enumerate(study.params.models, 1):
        path = study.dir / "servers" / model / "status.json"
        done = json.loads(path.read_text()) if path.exists() else None
        if done and done.get("status") == "ok" and done.get("digest") == _digest(study.params, model):
            print(f"[{i}/{len(study.params.models)}] {model}: done in an earlier run, skipped", flush=True)
            rows.append({"model": model, "status": "skipped"})
            continue
        print(f"[{i}/{len(study.params.models)}] {model}: serving ...", flush=True)
        st = _measure_model(study, model)
        print(f"[{i}/{len(study.params.models)}] {model}: {st['status']}"
              + (f": {st.get('root_cause')}" if st["status"] == "failed" else ""), flush=True)
        rows.append({"model": model, "status": st["status"], "root_cause": st.get("root_cause"),
                     "server_start_s": (st.get("server") or {}).get("start_s")})
    _consolidate(study)
    return pd.DataFrame(rows)


def _consolidate(study: Any) -> None:
    for name in TABLES:
        parts = []
        for model in study.params.models:
            f = study.dir / "servers" / model / "tables" / f"{name}.parquet"
            if f.exists():
                # every row says which server it came from (the trace has no labels of its own)
                parts.append(pd.read_parquet(f).assign(config=config_key(study.params, model), model=model))
        parts = [x for x in parts if not x.empty]
        if parts:
            df = pd.concat(parts, ignore_index=True)
            write_table(df, study.dir / "tables" / name, csv=name in ("levels", "phases"))


# ------------------------------------------------------------------ analysis
LEVEL_COLUMNS = ["model", "mode", "level", "status", "completed", "errors", "req_s", "output_tok_s",
                 "ttft_mean_s", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "itl_p50_s", "itl_p99_s",
                 "e2e_mean_s", "e2e_p99_s", "slo_met_share", "goodput_req_s", "j_per_output_token",
                 "gpm_sm_active_pct_mean", "util_gpu_pct_mean", "proc_cpu_pct_mean", "error_counts"]


def levels(study: Any) -> pd.DataFrame:
    df = study.table("levels")
    return df[[c for c in LEVEL_COLUMNS if c in df]] if not df.empty else df


def in_flight(levels: pd.DataFrame) -> pd.Series:
    """Requests in flight at a closed-loop level: its users, but never more than
    the requests it sends (older runs sent fewer requests than users)."""
    return levels[["level", "requests"]].min(axis=1)


def slo_capacity(study: Any) -> pd.DataFrame:
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
        broken = g[~g.index.isin(ok.index)]
        rows.append({"model": model, "mode": mode, "slo_ttft_ms": 1000 * slo,
                     "max load meeting mean TTFT": ok["level"].max() if len(ok) else None,
                     "max load meeting p90 TTFT": ok90["level"].max() if len(ok90) else None,
                     "first load breaking it": broken["level"].min() if len(broken) else None,
                     "goodput at max load (req/s)": g["goodput_req_s"].iloc[-1]})
    return pd.DataFrame(rows)


def figure_latency_throughput(study: Any) -> Any:
    """Latency against throughput: each point a load level, one line per model and mode."""
    import matplotlib.pyplot as plt

    from .. import figures

    df = study.table("levels")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (model, mode), g in df.groupby(["model", "mode"], sort=False):
        g = g[g["status"] != "failed"].sort_values("level")
        label = f"{figures.model_name(model)}, {'closed loop' if mode == 'concurrency' else 'Poisson arrivals'}"
        style = "o-" if mode == "concurrency" else "s--"
        axes[0].plot(g["output_tok_s"], 1000 * g["ttft_p50_s"], style, label=label)
        axes[1].plot(g["output_tok_s"], 1000 * g["itl_p50_s"], style, label=label)
        axes[2].plot(g["output_tok_s"], 1000 * g["e2e_p99_s"], style, label=label)
        for _, r in g.iterrows():
            axes[0].annotate(f"{r['level']:g}", (r["output_tok_s"], 1000 * r["ttft_p50_s"]), fontsize=6)
    axes[0].axhline(1000 * study.params.slo_ttft_s, color="red", lw=0.8, ls=":", label="200 ms objective")
    for ax, title in zip(axes, ("TTFT p50 (ms)", "inter-token latency p50 (ms)", "end-to-end p99 (ms)")):
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel(title)
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("Serving: latency against throughput (labels: concurrency or request rate)")
    fig.tight_layout()
    return figures.finish(fig, study, "serving_latency_throughput", study.caption(study.params.precision))


def figure_distributions(study: Any) -> Any:
    """TTFT and inter-token latency distributions at each closed-loop concurrency."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .. import figures

    req = study.table("requests")
    req = req[(req["mode"] == "concurrency") & req["error_type"].isna()] if not req.empty else req
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2))
    if req.empty:
        return figures.finish(fig, study, "serving_distributions", study.caption())
    ttft = req.assign(ttft_ms=1000 * req["ttft_s"], model=req["model"].map(figures.model_name))
    sns.boxplot(ttft, x="level", y="ttft_ms", hue="model", ax=axes[0], fliersize=1)
    itl = req[["model", "level", "itl_s"]].explode("itl_s").dropna()
    itl = itl.assign(itl_ms=1000 * itl["itl_s"].astype(float), model=itl["model"].map(figures.model_name))
    sns.boxplot(itl, x="level", y="itl_ms", hue="model", ax=axes[1], fliersize=1)
    axes[0].axhline(1000 * study.params.slo_ttft_s, color="red", lw=0.8, ls=":")
    for ax, label in zip(axes, ("time to first token (ms)", "inter-token latency (ms)")):
        ax.set_yscale("log")
        ax.set_xlabel("concurrent users")
        ax.set_ylabel(label)
    fig.tight_layout()
    return figures.finish(fig, study, "serving_distributions", study.caption(study.params.precision))


def example_server(study: Any) -> Any:
    """A running server for the first model, for the article's own client calls."""
    p: Params = study.params
    cdir = study.dir / "servers" / "example"
    cdir.mkdir(parents=True, exist_ok=True)
    server = _server(study, p.models[0], cdir / "server.log")
    server.start()
    return server
