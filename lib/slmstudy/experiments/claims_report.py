"""00_report: reads the study notebooks' runs, builds the measurement table the
claims are judged against, and the headline figures.

Which runs are judged is said, not guessed: ``source: runs`` (default) takes, for
each study notebook, the run folder its current parameters map to under
``outputs/runs`` with the report's profile (what ``make study`` just produced);
``source: <folder>`` (e.g. ``outputs/reference/h100``) takes ``<folder>/<notebook>``;
``runs: {notebook: folder}`` names any folder for one notebook. Which measured
point answers each claim workload ("a single request", "a batch of 4", article
001's speed test) is named in ``roles``, and every batch size and length is read
from the source run's own parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, PositiveInt

from .. import catalog, paths, stats
from ..figures import styled
from ..jobs import Job
from ..params import StudyParams, show
from ..results.run_folder import RunView, folder_for
from ..results.summaries import weights_gib
from .base import Experiment, Study
from .claim_measurements import measurements as build_measurements

NOTEBOOK = "00_report"
SOURCES = ("01_model_vs_model", "02_precision", "03_batch_scaling", "04_serving", "06_edge")
ROLES = ("single_request", "batch4", "speed_test")


class Params(StudyParams):
    """The report runs no engine; ``models`` names the two compared models."""

    source: str = Field("runs", max_length=300)
    runs: dict[str, str] = Field(default_factory=dict)
    # role -> {notebook: point name}: which measured point answers claims about it
    roles: dict[str, dict[str, str]] = Field(default_factory=dict)
    serving_level: PositiveInt = 16  # the concurrency article 000's "batch up to 16" is judged at
    slo_ttft_s: float = Field(0.2, gt=0)

    def check(self) -> list[Any]:
        from ..params import Problem

        out = [Problem((f"runs.{nb}",), f"is not a study notebook; allowed: {', '.join(SOURCES)}")
               for nb in self.runs if nb not in SOURCES]
        out += [Problem((f"roles.{r}",), f"is not a role; allowed: {', '.join(ROLES)}") for r in self.roles
                if r not in ROLES]
        return out


def jobs(p: Params) -> list[Job]:
    return []  # reads other notebooks' runs


EXPERIMENT = Experiment(NOTEBOOK, "Report", Params, jobs)


def _folder(study: Study[Params], nb: str) -> Path:
    p = study.params
    if nb in p.runs:
        path = Path(p.runs[nb])
        return path if path.is_absolute() else paths.project_root() / path
    if p.source != "runs":
        base = Path(p.source)
        return (base if base.is_absolute() else paths.project_root() / base) / nb
    from .registry import resolve

    try:
        return folder_for(resolve(nb, study.resolved.profile))
    except Exception as exc:  # the notebook's parameters do not validate in this checkout
        return Path(f"(no folder: {exc})")


def find_runs(study: Study[Params]) -> dict[str, RunView]:
    """The run folder of each study notebook that has results (see the module doc)."""
    found = {}
    for nb in SOURCES:
        folder = _folder(study, nb)
        if any((folder / "tables" / f"{t}.parquet").exists() for t in ("runs", "configs", "levels", "gguf_files")):
            found[nb] = RunView(folder)
    return found


def runs_used(study: Study[Params]) -> pd.DataFrame:
    rows = []
    runs = find_runs(study)
    for nb in SOURCES:
        view = runs.get(nb)
        env = view.environment() if view else {}
        rows.append({"notebook": nb, "run folder": show(view.dir) if view else f"not found: {show(_folder(study, nb))}",
                     "device": env.get("gpu_name") or env.get("cpu_model"),
                     "vLLM": f"{env.get('vllm_dist')} {env.get('vllm')}" if view else None,
                     "code": env.get("identity") or (env.get("git_commit") or "")[:10]})
    return pd.DataFrame(rows)


def measurements(study: Study[Params], runs: dict[str, RunView]) -> pd.DataFrame:
    """One row per (metric, model, precision): value with 95% CI, unit and source run."""
    p = study.params
    return build_measurements(p.models, runs, p.roles, p.slo_ttft_s, p.serving_level)


# ----------------------------------------------------------------------- claims
def claims_table(study: Study[Params], runs: dict[str, RunView]) -> pd.DataFrame:
    """Every claim of the articles beside our measurement, with a verdict and its reason."""
    from .. import claims

    env = next((v.environment() for v in runs.values()), {})
    hardware = env.get("gpu_name") or f"CPU ({env.get('cpu_model')})"
    return claims.judge(claims.load(), measurements(study, runs), hardware)


def write_claims(study: Study[Params], table: pd.DataFrame) -> None:
    """claims.json and claims.md in the run folder: what the README's table is made from."""
    from ..atomic import write_text

    study.folder.write_json("claims.json", table.to_dict(orient="records"))
    write_text(study.dir / "claims.md", claims_markdown(table))


def claims_markdown(table: pd.DataFrame) -> str:
    cols = [c for c in ("article", "claim", "claimed", "hardware", "ours", "ratio", "verdict", "reason") if c in table]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                v = "" if v != v else f"{v:.3g}"
            cells.append(str(v).replace("|", "/").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def verdict_sentence(table: pd.DataFrame) -> str:
    if table.empty:
        return "no claim judged"
    counts = table["verdict"].value_counts()
    return f"of {len(table)} claims, " + ", ".join(f"{int(n)} {v}" for v, n in counts.items()) + "."


def verdict_counts(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    return table.groupby(["article", "verdict"]).size().unstack(fill_value=0)


# ---------------------------------------------------------------------- figures
def _caption(view: RunView, extra: str = "") -> str:
    env = view.environment()
    device = env.get("gpu_name") or f"CPU ({env.get('cpu_model')})"
    parts = [device, f"{env.get('vllm_dist')} {env.get('vllm')}", "dummy weights", extra]
    return " | ".join(p for p in parts if p)


@styled
def headline_scaling(study: Study[Params], runs: dict[str, RunView]) -> Any:
    """Throughput and true SM activity against batch size, both models, with the hardware bound."""
    import matplotlib.pyplot as plt

    from .. import figures

    view = runs.get("03_batch_scaling")
    if view is None:
        return None
    src = (view.params_file() or {}).get("params", {})
    w = src.get("workload", {})
    r = view.table("runs")
    r = r[r["point"].isin([f"b{b}" for b in w.get("batch_sizes", [])])]
    s = stats.summarize(r, ["model", "precision", "batch"], ["output_tok_s", "util_gpu_pct_mean",
                        "gpm_sm_active_pct_mean", "gpm_tensor_active_pct_mean", "gpm_dram_bw_pct_mean"])
    roof = _bounds(view, s, w)
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.6), layout="constrained")
    for model, g in s.groupby("model", sort=False):
        line = axes[0].errorbar(g["batch"], g["output_tok_s"], yerr=[g["output_tok_s"] - g["output_tok_s_lo"],
                                g["output_tok_s_hi"] - g["output_tok_s"]], marker="o", capsize=3,
                                label=figures.model_name(model))
        if not roof.empty:
            rr = roof[roof["model"] == model].sort_values("batch")
            axes[0].plot(rr["batch"], rr["bound_tok_s"], "--", color=line[0].get_color(), lw=1)
    if "gpm_sm_active_pct_mean" in s and s["gpm_sm_active_pct_mean"].notna().any():
        for col, label, style in (("util_gpu_pct_mean", "utilization.gpu (nvidia-smi)", "--"),
                                  ("gpm_sm_active_pct_mean", "SM activity (GPM)", "-"),
                                  ("gpm_tensor_active_pct_mean", "tensor-core activity (GPM)", "-"),
                                  ("gpm_dram_bw_pct_mean", "DRAM bandwidth (GPM)", "-")):
            g = s[s["model"] == s["model"].iloc[0]]
            axes[1].plot(g["batch"], g[col], style, marker="o", label=label)
        axes[1].set_title(f"{figures.model_name(s['model'].iloc[0])}: what 'utilisation' means", fontsize=10)
        axes[1].set_ylabel("% (mean over each measured run)")
        axes[1].set_ylim(0, 100)
    else:
        axes[1].text(0.5, 0.5, "GPM metrics need an NVIDIA Hopper GPU", ha="center", transform=axes[1].transAxes)
    for ax in axes:
        figures.batch_axis(ax, s["batch"], f"batch (requests at once, {w.get('input_len')} tokens in, "
                                           f"{w.get('output_len')} out)")
    figures.legend_outside(axes[0], title="throughput")
    if axes[1].get_legend_handles_labels()[0]:
        figures.legend_outside(axes[1], title="activity")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("output tokens/s (dashed: hardware bound)")
    precision = catalog.precision(src.get("precision", "bf16")).display
    return figures.finish(fig, study, "headline_scaling", _caption(view, f"{precision} | bars: 95% CI"))


@styled
def headline_precision(study: Study[Params], runs: dict[str, RunView]) -> Any:
    """Weights, batch-1 and batch-256 speed and energy per token, per precision."""
    import matplotlib.pyplot as plt

    from .. import figures

    view = runs.get("02_precision")
    if view is None:
        return None
    r = view.table("runs")
    cfg = view.table("configs")
    s = stats.summarize(r, ["precision", "batch"], ["output_tok_s", "j_per_output_token"])
    order = [p for p in catalog.precisions() if p in set(s["precision"])]
    big = int(s["batch"].max())
    panels = [("weights", "weights (GiB)"), (1, "tokens/s at batch 1"), (big, f"tokens/s at batch {big}"),
              ("energy", f"J per output token at batch {big}")]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    names = [catalog.precision(p).display for p in order]
    for ax, (what, label) in zip(axes, panels):
        if what == "weights":
            warm = cfg[cfg["start"] != "cold"] if "start" in cfg else cfg
            w = warm.drop_duplicates("precision").set_index("precision").reindex(order)
            ax.bar(names, [weights_gib(r) for _, r in w.iterrows()], color="#4c72b0")
        else:
            batch = big if what == "energy" else what
            col = "j_per_output_token" if what == "energy" else "output_tok_s"
            g = s[s["batch"] == batch].set_index("precision").reindex(order)
            if col not in g or g[col].isna().all():
                ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
            else:
                ax.bar(names, g[col], yerr=[g[col] - g[f"{col}_lo"], g[f"{col}_hi"] - g[col]], capsize=3,
                       color="#dd8452" if what == "energy" else "#55a868")
        ax.set_title(label, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    model = catalog.model(str(cfg["model"].iloc[0])).display if not cfg.empty else ""
    fig.suptitle(f"{model}: what each precision buys")
    fig.tight_layout()
    return figures.finish(fig, study, "headline_precision", _caption(view, "bars: 95% CI"))


def _bounds(view: RunView, summary: pd.DataFrame, workload: dict[str, Any]) -> pd.DataFrame:
    """The hardware bound per model and batch from the run's own hardware probe."""
    from .. import roofline as rl

    hw = view.hardware()
    if hw is None or summary.empty or not workload:
        return pd.DataFrame()
    s = summary.assign(input_len=workload["input_len"], output_len=workload["output_len"])
    return rl.attach(s, hw)
