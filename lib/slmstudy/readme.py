"""The README's numbers, generated from the committed reference runs, never typed.

``python -m slmstudy docs`` rewrites every block of the README between
``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->`` and the
files under ``docs/`` that are generated (the claims table, the column schema);
``tests/test_readme.py`` fails when the README and the reference tables disagree.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import catalog, paths, stats
from .display import number
from .results.run_folder import RunView

BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)",
                   re.DOTALL)


def _ref(machine: str = "h100") -> Path:
    return paths.reference_dir() / machine


def _view(nb: str, machine: str = "h100") -> RunView | None:
    folder = _ref(machine) / nb
    return RunView(folder) if (folder / "tables").is_dir() else None


def _name(model: str) -> str:
    return catalog.model(model).display


def _ci(values: pd.Series, fmt: Callable[[float], str] = number) -> str:
    m, lo, hi, n = stats.mean_ci(values.to_numpy(float))
    return f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" if n > 1 else fmt(m)


def _mean(df: pd.DataFrame, col: str, **where: Any) -> float:
    for k, v in where.items():
        df = df[df[k] == v]
    return float(df[col].mean()) if len(df) else float("nan")


def _link(path: Path) -> str:
    rel = path.relative_to(paths.project_root()) if path.is_relative_to(paths.project_root()) else path
    return f"[`{rel}`]({rel})"


def _params(view: RunView) -> dict[str, Any]:
    return (view.params_file() or {}).get("params", {})


# ----------------------------------------------------------------- sections
def study_minutes(t: pd.DataFrame) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    """(minutes, jobs measured, notebooks) of a study timing table: the sum of its
    calls' totals (one per call of the lent machine; a job reused by a later call
    counts once), or, for a pool analysed elsewhere (``tools/pool_timing.py``: no
    total rows), the jobs' and notebooks' own times."""
    reused = t["reused"].fillna(False).astype(bool) if "reused" in t else pd.Series(False, index=t.index)
    jobs = t[~t["kind"].isin(["notebook", "total"]) & ~reused]
    nbs = t[t["kind"] == "notebook"]
    totals = t.loc[t["kind"] == "total", "wall_s"]
    total = float(totals.sum()) if len(totals) else float(jobs["wall_s"].sum() + nbs["wall_s"].sum())
    return total / 60, jobs, nbs


def _where(t: pd.DataFrame, jobs: pd.DataFrame, nbs: pd.DataFrame) -> str:
    """" (machine A: x min; machine B: y min)" when the jobs and notebooks ran on different machines."""
    if "machine" not in t or t["machine"].nunique() <= 1:
        return ""
    return " (" + "; ".join(f"{k}: {g['wall_s'].sum() / 60:.1f} min" for k, g in
                            pd.concat([jobs, nbs]).groupby("machine", sort=False)) + ")"


def time_split(jobs: pd.DataFrame, nbs: pd.DataFrame) -> str:
    """"cold starts 3.6 min, ..." from a study timing table's job and notebook rows."""
    def col(df: pd.DataFrame, c: str) -> float:
        return float(df[c].fillna(0).sum()) if c in df else 0.0

    engines = jobs[jobs["kind"] == "engine"]
    cold = engines[engines["job"].str.endswith("__cold")]
    warm = engines.drop(cold.index)
    parts = [("cold engine starts (01)", col(cold, "wall_s")),
             ("other engines' vLLM imports and starts", col(warm, "import_s") + col(warm, "engine_start_s")),
             ("offline measuring", col(warm, "measure_s")),
             ("the rest of the offline jobs (launch, shutdown, memory back)",
              col(warm, "wall_s") - col(warm, "import_s") - col(warm, "engine_start_s") - col(warm, "measure_s")),
             ("servers (start and load levels)", col(jobs[jobs["kind"] == "serve"], "wall_s")),
             ("GGUF files and llama.cpp", col(jobs[jobs["kind"].isin(["edge", "gguf_file"])], "wall_s")),
             ("probes", col(jobs[jobs["kind"].isin(["hardware", "overhead_probe"])], "wall_s")),
             ("notebooks", col(nbs, "wall_s"))]
    return ", ".join(f"{name} {sec / 60:.1f} min" for name, sec in parts if sec > 0)


def _untimed(nbs: pd.DataFrame) -> str:
    """" (without 06_edge: ...)" for study notebooks the timing table lacks (a sitting
    that ran part of the study; those folders name their own commits)."""
    from .experiments import registry

    missing = [nb for nb in registry.MODULES if nb not in set(nbs["job"])]
    if not missing:
        return ""
    return (f" without {', '.join(f'`{nb}`' for nb in missing)} (not in the sitting this table is from; "
            "its folder names the commit that measured it)")


def timing_lines() -> list[str]:
    path = _ref() / "study_timing.csv"
    if not path.exists():
        return ["* **Study time**: no timing table committed yet (`outputs/reference/h100/study_timing.csv`)."]
    t = pd.read_csv(path)
    minutes, jobs, nbs = study_minutes(t)
    start = jobs["engine_start_s"].fillna(0).sum() + jobs.get("import_s", pd.Series(dtype=float)).fillna(0).sum()
    where = _where(t, jobs, nbs)
    return [f"* **The whole study took {minutes:.1f} min**{where}{_untimed(nbs)}: {len(jobs)} measurement jobs on the H100, "
            f"{len(nbs)} notebooks; vLLM imports and engine starts {start / 60:.1f} min of it. "
            f"{_link(path)} splits each job into launch, vLLM import, engine start (weight loading, "
            "`torch.compile`, CUDA graphs), measuring and teardown."]


def batch_lines() -> list[str]:
    v = _view("03_batch_scaling")
    if v is None:
        return []
    p = _params(v)
    runs = v.table("runs")
    names = [f"b{b}" for b in p["workload"]["batch_sizes"]]
    runs = runs[runs["point"].isin(names)]
    top = max(p["workload"]["batch_sizes"])
    out = []
    for model in p["models"]:
        r = runs[runs["model"] == model]
        out.append(f"{_name(model)} {number(_mean(r, 'output_tok_s', batch=1))} tok/s at batch 1 and "
                   f"{number(_mean(r, 'output_tok_s', batch=top))} at batch {top}")
    w = p["workload"]
    lines = [f"* **Batch scaling** (`03_batch_scaling`, {w['input_len']} tokens in, {w['output_len']} out, mean of "
             f"{w['repetitions']}+ repetitions): " + "; ".join(out) + "."]
    hw = v.hardware()
    if hw:
        from . import roofline

        s = stats.summarize(runs, ["model", "precision", "batch"], ["output_tok_s"])
        b = roofline.attach(s.assign(input_len=w["input_len"], output_len=w["output_len"]), hw)
        frac = [f"{_name(m)} {100 * _mean(b, 'achieved_fraction', model=m, batch=1):.0f}% / "
                f"{100 * _mean(b, 'achieved_fraction', model=m, batch=top):.0f}%" for m in p["models"]]
        lines.append(f"  Share of the hardware bound (bytes and FLOPs of a step over the measured "
                     f"{hw['bandwidth_tbs']:.2f} TB/s and {hw['tflops']['bf16']:.0f} bf16 TFLOP/s) at batch 1 / "
                     f"{top}: " + "; ".join(frac) + ".")
    r1 = runs[(runs["batch"] == 1) & (runs["model"] == p["models"][0])]
    if "gpm_sm_active_pct_mean" in r1 and r1["gpm_sm_active_pct_mean"].notna().any():
        lines.append(f"* **\"GPU utilisation\" is misleading**: at batch 1 {_name(p['models'][0])} reads "
                     f"{number(r1['util_gpu_pct_mean'].mean())}% `utilization.gpu` while GPM shows "
                     f"{number(r1['gpm_sm_active_pct_mean'].mean())}% SM activity, "
                     f"{number(r1['gpm_tensor_active_pct_mean'].mean())}% tensor-core activity and "
                     f"{number(r1['gpm_dram_bw_pct_mean'].mean())}% of DRAM bandwidth.")
    return lines


def crosscheck_lines() -> list[str]:
    v = _view("03_batch_scaling")
    if v is None:
        return []
    bench, runs = v.table("bench_runs"), v.table("runs")
    if bench.empty:
        return []
    if "tool" in bench:  # bench latency's iterations (bench throughput has its own verdict)
        bench = bench[bench["tool"].fillna("latency") == "latency"]
    parts = []
    batches = sorted(bench["batch"].unique()) if "batch" in bench else [1]
    for model in _params(v)["models"]:
        for batch in batches:
            ours = runs[(runs["model"] == model) & (runs["point"] == f"crosscheck_b{batch}")]["output_tok_s"]
            theirs = bench[(bench["model"] == model) & (bench.get("batch", 1) == batch)]["output_tok_s"]
            if len(ours) and len(theirs):
                diff = 100 * (ours.median() - theirs.median()) / theirs.median()
                parts.append(f"{_name(model)}{f' batch {batch}' if len(batches) > 1 else ''} {diff:+.1f}% "
                             f"({number(ours.median())} vs {number(theirs.median())} tok/s)")
    where = "at batch " + ", ".join(str(b) for b in batches)
    return [f"* **Cross-check with `vllm bench latency`** {where} (same engine arguments, bench latency just "
            "before our engine, medians): " + "; ".join(parts) + "."]


def model_lines() -> list[str]:
    v = _view("01_model_vs_model")
    if v is None:
        return []
    runs, cfg = v.table("runs"), v.table("configs")
    a, b = _params(v)["models"][:2]

    def speed(point: str, model: str, col: str = "output_tok_s") -> str:
        return _ci(runs[(runs["point"] == point) & (runs["model"] == model)][col])

    start = {(r["model"], r["start"]): r["engine_start_s"] for _, r in cfg.iterrows()}
    cold = [start.get((m, "cold")) for m in (a, b)]
    warm = [next((v for (mm, s), v in start.items() if mm == m and s != "cold"), None) for m in (a, b)]
    return [f"* **{_name(a)} vs {_name(b)}** (`01_model_vs_model`): one request {speed('single', a)} vs "
            f"{speed('single', b)} tok/s; a batch of 4 {speed('batch4', a)} vs {speed('batch4', b)} tok/s; "
            f"first token {number(1000 * _mean(runs, 'ttft_mean_s', point='single', model=a))} vs "
            f"{number(1000 * _mean(runs, 'ttft_mean_s', point='single', model=b))} ms. Engine start cold "
            f"{number(cold[0])} vs {number(cold[1])} s, warm {number(warm[0])} vs {number(warm[1])} s."]


def precision_lines(v: RunView | None = None, label: str = "") -> list[str]:
    v = v or _view("02_precision")
    if v is None:
        return []
    from .results.summaries import weights_gib

    p = _params(v)
    runs, cfg = v.table("runs"), v.table("configs")
    top = max(p["workload"]["batch_sizes"])
    order = [x for x in catalog.precisions() if x in p["precisions"]]
    w = {r["precision"]: weights_gib(r) for _, r in cfg.iterrows()}
    disp = [catalog.precision(x).display for x in order]
    return [f"* **Precision** (`02_precision`{label}, {_name(p['models'][0])}, {', '.join(disp)}): weights "
            + ", ".join(f"{w.get(x, float('nan')):.2f}" for x in order) + " GiB; at batch 1 "
            + ", ".join(number(_mean(runs, "output_tok_s", precision=x, batch=1)) for x in order)
            + f" tok/s; at batch {top} "
            + ", ".join(number(_mean(runs, "output_tok_s", precision=x, batch=top)) for x in order)
            + " tok/s; energy per token at batch "
            + f"{top}: " + ", ".join(number(_mean(runs, "j_per_output_token", precision=x, batch=top))
                                    for x in order) + " J."]


def serving_lines() -> list[str]:
    v = _view("04_serving")
    if v is None:
        return []
    lv = v.table("levels")
    closed = lv[(lv["mode"] == "concurrency") & (lv["level"] == 16)]
    parts = [f"{_name(r['model'])} {number(1000 * r['ttft_mean_s'])} ms" for _, r in closed.iterrows()]
    p = _params(v)
    return [f"* **Serving** (`04_serving`, chat completions, {p['input_tokens']} in / {p['output_tokens']} out): "
            f"mean time to first token at 16 concurrent users " + "; ".join(parts) + "."]


def edge_lines(v: RunView | None = None, label: str = "") -> list[str]:
    """06_edge: the Q4_K_M files' sizes and llama.cpp's generation speed on the host's cores
    (at 4 threads, article 001's phone setting, and at the most threads measured)."""
    v = v or _view("06_edge")
    if v is None:
        return []
    files, runs, cfg = v.table("gguf_files"), v.table("runs"), v.table("configs")
    if files.empty or runs.empty:
        return []
    models = list(dict.fromkeys(runs["model"]))
    top = int(runs["threads"].max())
    cores = int(cfg["cpu_count"].dropna().iloc[0]) if "cpu_count" in cfg and cfg["cpu_count"].notna().any() else top

    def size(model: str) -> str:
        row = files[(files["model"] == model) & (files["file_type"] == "Q4_K_M")]
        return f"{row['size_bytes'].iloc[0] / 1e9:.2f} GB" if len(row) else "n/a"

    def gen(file_type: str, threads: int) -> str:
        return " / ".join(number(_mean(runs, "gen_tok_s", model=m, file_type=file_type, threads=threads))
                          for m in models)

    names = " / ".join(_name(m) for m in models)
    speeds = f"generation at 4 threads {gen('Q4_K_M', 4)} tok/s"
    if top != 4:
        speeds += f", at {top} threads {gen('Q4_K_M', top)} tok/s"
    if (runs["file_type"] == "F16").any():
        speeds += f" (F16 at {top}: {gen('F16', top)})"
    return [f"* **Edge** (`06_edge`{label}, llama.cpp via xllamacpp on the host's {cores} CPU cores, "
            f"{int(runs['input_len'].iloc[0])} tokens in, {int(runs['output_len'].iloc[0])} out; {names}): "
            f"Q4_K_M files " + " / ".join(size(m) for m in models) + f"; {speeds}."]


@functools.lru_cache(maxsize=8)
def _anatomy_of(folder: Path, stamp: tuple[int, int]) -> pd.DataFrame:
    """A committed folder's step-anatomy summary, analysed once per
    ``docs`` run (the results and limitations blocks both read them; ``stamp``, the
    event table's mtime and size, keeps a changed reference from being read stale)."""
    from .experiments import anatomy_report

    return anatomy_report.analyse(RunView(folder))[0]


def _anatomy(v: RunView) -> pd.DataFrame:
    st = (v.dir / "tables" / "anatomy_events.parquet").stat()
    return _anatomy_of(v.dir, (st.st_mtime_ns, st.st_size))


def anatomy_lines(nb: str = "03_batch_scaling", by: str = "model") -> list[str]:
    """The step anatomy: what limits the smallest and the largest batch, per model (03)
    or precision (02), by the notebooks' written rule (``anatomy_report.limit_of``)."""
    v = _view(nb)
    if v is None or v.table("anatomy").empty:
        return []
    from .experiments import anatomy_report

    s = anatomy_report.verdicts(_anatomy(v))
    if "limit" not in s or s["limit"].isna().all():
        return []
    s = s[s["limit"].notna()]
    out = []
    for g in dict.fromkeys(s[by]):
        rows = s[s[by] == g].sort_values("batch")
        said = []
        for _, r in rows.iloc[[0, -1]].drop_duplicates("batch").iterrows():
            said.append(f"batch {int(r['batch'])} {r['limit']} ({r['measured_step_ms']:.2f} ms a step, the device "
                        f"idle {100 * anatomy_report.host_share(r):.0f}% of it, kernels {r['classes_ms'] / r['class_bounds_ms']:.1f}x "
                        "their own bounds)")
        out.append(f"{_name(g) if by == 'model' else catalog.precision(g).display}: " + ", ".join(said))
    ok = int((s["sum_check"] == "ok").sum())
    cost = (f" (the profiler's own cost: a profiled step {s['profiler_cost_pct'].min():+.0f}% to "
            f"{s['profiler_cost_pct'].max():+.0f}% against the measured one; the idle shares above are the "
            "measured step less the kernels' time)") if "profiler_cost_pct" in s and ok < len(s) else ""
    return [f"* **Where a decode step's time goes** (`{nb}`'s step anatomy: torch's profiler over "
            f"{int(v.table('anatomy')['steps'].iloc[0])} decode steps, every kernel classified): " + "; ".join(out)
            + f". Classes + idle match the measured step within 5% in {ok} of {len(s)} windows{cost}."]


def energy_lines() -> list[str]:
    v = _view("03_batch_scaling")
    if v is None:
        return []
    from .experiments import energy_report

    t = energy_report.table_from(v.table("telemetry"), v.table("runs"), v.table("configs"))
    return [f"* **Energy readings** (`03_batch_scaling`'s traces, {len(t)} engines): "
            + energy_report.verdict(t)[0].upper() + energy_report.verdict(t)[1:]]


def claims_lines() -> list[str]:
    path = _ref() / "00_report" / "claims.json"
    if not path.exists():
        return []
    table = pd.DataFrame(json.loads(path.read_text()))
    counts = table["verdict"].value_counts()
    text = ", ".join(f"{int(counts[k])} {k}" for k in ("holds", "contradicted", "not supported", "not comparable",
                                                       "untestable") if k in counts)
    return [f"* **Every claim of the articles** ({len(table)}) beside our measurement: {text}. The table with "
            f"each verdict's reason: [`docs/claims.md`](docs/claims.md).{_other_sources()}"]


def _other_sources() -> str:
    """Run folders the report read from outside the H100 references (its ``runs`` key),
    each with the commit that measured it."""
    params = RunView(_ref() / "00_report").params_file() or {}
    parts = []
    for nb, folder in sorted(((params.get("params") or {}).get("runs") or {}).items()):
        env = RunView(paths.project_root() / folder).environment()
        parts.append(f"{nb} from `{folder}` (measured by {(env.get('git_commit') or '')[:7] or 'an unrecorded commit'})")
    return f" Besides the H100 folders the report read {'; '.join(parts)}." if parts else ""


def compare_lines() -> list[str]:
    out = []
    for name, what in (("compare_old_new", "The previous H100 references against these"),
                       ("compare_h100_h200", "The H200 against the H100")):
        path = _ref() / name / "comparison.json"
        if path.exists():
            c = json.loads(path.read_text())
            rows = pd.read_csv(path.with_name("comparison.csv"))
            tp = rows[rows["metric"] == "output_tok_s"]["ratio_b_over_a"]
            extra = ""
            if "prediction_error_pct" in rows and rows["prediction_error_pct"].notna().any():
                err = rows["prediction_error_pct"].dropna()
                extra = (f"; the roofline model predicted those ratios within {err.abs().median():.0f}% "
                         f"(median, {err.min():+.0f}% to {err.max():+.0f}%)")
            out.append(f"* **{what}** (`05_compare`, {_link(path.parent)}): {c['sentence']} Throughput ratio B/A "
                       f"median {np.median(tp):.2f} ({tp.min():.2f} to {tp.max():.2f}){extra}.")
    return out


# Opt-in layers' evidence (``-f`` files beyond the default study), each folder measured
# by its own commit and named as such: the default study's folders above are one commit's.
LAYER_LINES: dict[str, tuple[str, Callable[..., list[str]]]] = {
    "02_precision_fourbit": ("params/02_precision/fourbit_gpu.yaml", precision_lines),
    "06_edge_sweep": ("params/06_edge/sweep_gpu.yaml", edge_lines),
}


def _commit(view: RunView) -> str:
    return (view.environment().get("git_commit") or "")[:7] or "an unrecorded commit"


def layer_lines() -> list[str]:
    out = []
    for name, (layer, lines) in LAYER_LINES.items():
        folder = _ref() / name
        if (folder / "tables").is_dir():
            v = RunView(folder)
            out += lines(v, f" with the layer `{layer}`, measured by {_commit(v)} in {_link(folder)}")
    return out


def provenance_line() -> str:
    """Which commits measured the references quoted: one, or say there are several.
    The report measures nothing: its rows are the notebooks' (its own record is of
    the execution), so it is named apart."""
    commits = {}
    for nb in ("01_model_vs_model", "02_precision", "03_batch_scaling", "04_serving", "06_edge"):
        v = _view(nb) or (RunView(_ref() / nb) if (_ref() / nb / "environment.json").exists() else None)
        if v is not None:
            env = v.environment()
            commits[nb] = (env.get("git_commit") or "")[:7] or "not recorded"
    executed = (RunView(_ref() / "00_report").environment().get("git_commit") or "")[:7]
    tail = f" The report (`00_report`, measuring nothing) was executed over them by {executed}." if executed else ""
    if len(set(commits.values())) <= 1:
        return (f"The default study's folders ({', '.join(f'`{nb}`' for nb in commits)}) were all measured by "
                f"commit {next(iter(commits.values()), 'n/a')} (`tools/h100.sh study`); the folders of opt-in layers "
                f"(`-f` files) and earlier checks name their own.{tail}")
    return ("**These folders were measured by different commits** (" + ", ".join(f"{nb}: {c}" for nb, c in
            commits.items()) + "); `tools/h100.sh study` regenerates all of them from one commit." + tail)


def results_block() -> str:
    lines = ["Generated by `python -m slmstudy docs` from the committed run folders in "
             "[`outputs/reference/h100/`](outputs/reference/h100/). " + provenance_line() + " Dummy weights on the "
             "real architectures, bf16 unless stated; means with 95% confidence intervals in each folder's tables.",
             ""]
    for part in (timing_lines, batch_lines, anatomy_lines, crosscheck_lines, model_lines, precision_lines,
                 serving_lines, edge_lines, energy_lines, layer_lines, claims_lines, compare_lines):
        lines += part()
    return "\n".join(lines) + "\n"


def claims_doc() -> str:
    path = _ref() / "00_report" / "claims.json"
    head = ["# Every claim of the three articles beside our measurement", "",
            "Generated by `python -m slmstudy docs` from "
            "`outputs/reference/h100/00_report/claims.json`; do not edit.", ""]
    if not path.exists():
        return "\n".join(head + ["No reference report committed yet."]) + "\n"
    from .experiments.claims_report import claims_markdown

    return "\n".join(head) + claims_markdown(pd.DataFrame(json.loads(path.read_text())))


def limitations_block() -> str:
    """Targets the references missed, stated with the measured number."""
    lines = []
    path = _ref() / "study_timing.csv"
    if path.exists():
        t = pd.read_csv(path)
        total, jobs, nbs = study_minutes(t)
        if total >= 15:
            lines.append(f"* **The GPU study takes {total:.1f} min**{_where(t, jobs, nbs)}{_untimed(nbs)}, over the 15-minute "
                         f"target. Where the time goes ({_link(path)}): {time_split(jobs, nbs)}. Each part is a "
                         "measurement the gpu profiles ask for (the cold starts are 01's; each precision compiles "
                         "its own graphs); the opt-in layers are not in it.")
    lines += anatomy_limitations()
    return "\n".join(lines) + ("\n" if lines else "")


def anatomy_limitations() -> list[str]:
    """The step anatomy's sum check (classes + idle within 5% of the measured step)
    where the references miss it, with the profiler's cost that explains it."""
    out = []
    for nb in ("03_batch_scaling", "02_precision"):
        v = _view(nb)
        if v is None or v.table("anatomy").empty:
            continue
        s = _anatomy(v)
        s = s[s["sum_check"].isin(["ok", "off"])] if "sum_check" in s else s.iloc[0:0]
        off = s[s["sum_check"] == "off"]
        if off.empty:
            continue
        longer, shorter = off[off["profiler_cost_pct"] > 0], off[off["profiler_cost_pct"] < 0]
        said = []
        if len(longer):
            c = longer["profiler_cost_pct"]
            said.append(f"in {len(longer)} the profiler's own host work lengthens a profiled step by {c.min():+.0f}% "
                        f"to {c.max():+.0f}% (median {c.median():+.0f}%), all of it device idle time (the kernels' "
                        "times are the device's)")
        if len(shorter):
            said.append(f"in {len(shorter)} the profiled step is the shorter (down to "
                        f"{shorter['profiler_cost_pct'].min():+.0f}%): the host was faster during the window than "
                        "during the sweep")
        out.append(f"* **The step anatomy's sum check** (`{nb}`): classes + idle are within 5% of the measured "
                   f"step in {len(s) - len(off)} of {len(s)} windows; " + "; ".join(said) + ". The verdicts "
                   "therefore read the measured step less the kernels' time (`host_share`), an estimate that holds "
                   "while profiling leaves the kernels' durations alone.")
    return out


GENERATORS: dict[str, Callable[[], str]] = {"results": results_block, "limitations": limitations_block}


def render(readme: str) -> str:
    """The README with every generated block rebuilt."""
    def sub(m: re.Match[str]) -> str:
        gen = GENERATORS.get(m.group("name"))
        return m.group(0) if gen is None else m.group(1) + gen() + m.group(4)
    return BLOCK.sub(sub, readme)


def files() -> dict[Path, str]:
    """Every generated file and its content."""
    from .results import columns

    root = paths.project_root()
    return {root / "README.md": render((root / "README.md").read_text()),
            root / "docs" / "claims.md": claims_doc(),
            root / "docs" / "columns.md": columns.markdown()}
