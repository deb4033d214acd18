"""The results block's sections, one function per notebook's headline numbers."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd

from .. import catalog, paths, stats
from ..display import number
from ..results.run_folder import RunView
from .common import (FolderStudy, ci_text, commit_of, display_name, link, mean_of, params_of, reference_dir,
                     reference_view)


def batch_lines() -> list[str]:
    v = reference_view("03_batch_scaling")
    if v is None:
        return []
    p = params_of(v)
    runs = v.table("runs")
    names = [f"b{b}" for b in p["workload"]["batch_sizes"]]
    runs = runs[runs["point"].isin(names)]
    top = max(p["workload"]["batch_sizes"])
    out = []
    for model in p["models"]:
        r = runs[runs["model"] == model]
        out.append(f"{display_name(model)} {number(mean_of(r, 'output_tok_s', batch=1))} tok/s at batch 1 and "
                   f"{number(mean_of(r, 'output_tok_s', batch=top))} at batch {top}")
    w = p["workload"]
    lines = [f"* **Batch scaling** (`03_batch_scaling`, {w['input_len']} tokens in, {w['output_len']} out, mean of "
             f"{w['repetitions']}+ repetitions): " + "; ".join(out) + "."]
    hw = v.hardware()
    if hw:
        from .. import roofline

        s = stats.summarize(runs, ["model", "precision", "batch"], ["output_tok_s"])
        b = roofline.attach(s.assign(input_len=w["input_len"], output_len=w["output_len"]), hw)
        frac = [f"{display_name(m)} {100 * mean_of(b, 'achieved_fraction', model=m, batch=1):.0f}% / "
                f"{100 * mean_of(b, 'achieved_fraction', model=m, batch=top):.0f}%" for m in p["models"]]
        lines.append(f"  Share of the hardware bound (bytes and FLOPs of a step over the measured "
                     f"{hw['bandwidth_tbs']:.2f} TB/s and {hw['tflops']['bf16']:.0f} bf16 TFLOP/s) at batch 1 / "
                     f"{top}: " + "; ".join(frac) + ".")
    r1 = runs[(runs["batch"] == 1) & (runs["model"] == p["models"][0])]
    if "gpm_sm_active_pct_mean" in r1 and r1["gpm_sm_active_pct_mean"].notna().any():
        lines.append(f"* **\"GPU utilisation\" is misleading**: at batch 1 {display_name(p['models'][0])} reads "
                     f"{number(r1['util_gpu_pct_mean'].mean())}% `utilization.gpu` while GPM shows "
                     f"{number(r1['gpm_sm_active_pct_mean'].mean())}% SM activity, "
                     f"{number(r1['gpm_tensor_active_pct_mean'].mean())}% tensor-core activity and "
                     f"{number(r1['gpm_dram_bw_pct_mean'].mean())}% of DRAM bandwidth.")
    return lines


def crosscheck_lines() -> list[str]:
    v = reference_view("03_batch_scaling")
    if v is None:
        return []
    bench, runs = v.table("bench_runs"), v.table("runs")
    if bench.empty:
        return []
    if "tool" in bench:  # bench latency's iterations (bench throughput has its own verdict)
        bench = bench[bench["tool"].fillna("latency") == "latency"]
    parts = []
    batches = sorted(bench["batch"].unique()) if "batch" in bench else [1]
    for model in params_of(v)["models"]:
        for batch in batches:
            ours = runs[(runs["model"] == model) & (runs["point"] == f"crosscheck_b{batch}")]["output_tok_s"]
            theirs = bench[(bench["model"] == model) & (bench.get("batch", 1) == batch)]["output_tok_s"]
            if len(ours) and len(theirs):
                diff = 100 * (ours.median() - theirs.median()) / theirs.median()
                parts.append(f"{display_name(model)}{f' batch {batch}' if len(batches) > 1 else ''} {diff:+.1f}% "
                             f"({number(ours.median())} vs {number(theirs.median())} tok/s)")
    where = "at batch " + ", ".join(str(b) for b in batches)
    return [f"* **Cross-check with `vllm bench latency`** {where} (same engine arguments, bench latency just "
            "before our engine, medians): " + "; ".join(parts) + "."]


def model_lines() -> list[str]:
    v = reference_view("01_model_vs_model")
    if v is None:
        return []
    runs, cfg = v.table("runs"), v.table("configs")
    a, b = params_of(v)["models"][:2]

    def speed(point: str, model: str, col: str = "output_tok_s") -> str:
        return ci_text(runs[(runs["point"] == point) & (runs["model"] == model)][col])

    start = {(r["model"], r["start"]): r["engine_start_s"] for _, r in cfg.iterrows()}
    cold = [start.get((m, "cold")) for m in (a, b)]
    warm = [next((v for (mm, s), v in start.items() if mm == m and s != "cold"), None) for m in (a, b)]
    return [f"* **{display_name(a)} vs {display_name(b)}** (`01_model_vs_model`): one request {speed('single', a)} vs "
            f"{speed('single', b)} tok/s; a batch of 4 {speed('batch4', a)} vs {speed('batch4', b)} tok/s; "
            f"first token {number(1000 * mean_of(runs, 'ttft_mean_s', point='single', model=a))} vs "
            f"{number(1000 * mean_of(runs, 'ttft_mean_s', point='single', model=b))} ms. Engine start cold "
            f"{number(cold[0])} vs {number(cold[1])} s, warm {number(warm[0])} vs {number(warm[1])} s."]


def precision_lines(v: RunView | None = None, label: str = "") -> list[str]:
    v = v or reference_view("02_precision")
    if v is None:
        return []
    from ..results.summaries import weights_gib

    p = params_of(v)
    runs, cfg = v.table("runs"), v.table("configs")
    top = max(p["workload"]["batch_sizes"])
    order = [x for x in catalog.precisions() if x in p["precisions"]]
    w = {r["precision"]: weights_gib(r) for _, r in cfg.iterrows()}
    disp = [catalog.precision(x).display for x in order]
    return [f"* **Precision** (`02_precision`{label}, {display_name(p['models'][0])}, {', '.join(disp)}): weights "
            + ", ".join(f"{w.get(x, float('nan')):.2f}" for x in order) + " GiB; at batch 1 "
            + ", ".join(number(mean_of(runs, "output_tok_s", precision=x, batch=1)) for x in order)
            + f" tok/s; at batch {top} "
            + ", ".join(number(mean_of(runs, "output_tok_s", precision=x, batch=top)) for x in order)
            + " tok/s; energy per token at batch "
            + f"{top}: " + ", ".join(number(mean_of(runs, "j_per_output_token", precision=x, batch=top))
                                    for x in order) + " J."]


def serving_lines() -> list[str]:
    v = reference_view("04_serving")
    if v is None:
        return []
    lv = v.table("levels")
    closed = lv[(lv["mode"] == "concurrency") & (lv["level"] == 16)]
    parts = [f"{display_name(r['model'])} {number(1000 * r['ttft_mean_s'])} ms" for _, r in closed.iterrows()]
    p = params_of(v)
    return [f"* **Serving** (`04_serving`, chat completions, {p['input_tokens']} in / {p['output_tokens']} out): "
            f"mean time to first token at 16 concurrent users " + "; ".join(parts) + ".", *serving_history_lines()]


def serving_history_lines() -> list[str]:
    """How far the servers' throughput moved between the H100 sittings git holds
    (``serving_history.csv``, written by ``tools/serving_history.py``)."""
    from ..results.serving_history import spread

    path = reference_dir() / "serving_history.csv"
    if not path.exists():
        return []
    s = spread(pd.read_csv(path))
    if s.empty:
        return []
    parts = []
    for mode, what in (("concurrency", "closed loop"), ("rate", "open loop")):
        m = s[s["mode"] == mode]
        if not m.empty:
            parts.append(f"{what} {m['highest_over_lowest'].min():.2f}x to {m['highest_over_lowest'].max():.2f}x")
    top = s.loc[s["highest_over_lowest"].idxmax()]
    lo, hi = int(s["sittings"].min()), int(s["sittings"].max())
    level = f"{top['level']:g}"
    unit = "users" if top["mode"] == "concurrency" else "requests/s"
    return [f"* **Serving between sittings** ({link(path)}: {lo if lo == hi else f'{lo} to {hi}'} H100 sittings of the "
            f"same workload per level, `python tools/serving_history.py`): per level, the fastest sitting's output throughput over the "
            f"slowest's: {'; '.join(parts)} (widest: {display_name(top['model'])} at {level} {unit}, "
            f"{top['values']} tok/s, measured by {top['commits']}). Open-loop levels the server keeps up with are "
            "set by the offered rate; a serving figure is its sitting's."]


def edge_lines(v: RunView | None = None, label: str = "") -> list[str]:
    """06_edge: the Q4_K_M files' sizes and llama.cpp's generation speed on the host's cores
    (at 4 threads, article 001's phone setting, and at the most threads measured)."""
    v = v or reference_view("06_edge")
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
        return " / ".join(number(mean_of(runs, "gen_tok_s", model=m, file_type=file_type, threads=threads))
                          for m in models)

    names = " / ".join(display_name(m) for m in models)
    speeds = f"generation at 4 threads {gen('Q4_K_M', 4)} tok/s"
    if top != 4:
        speeds += f", at {top} threads {gen('Q4_K_M', top)} tok/s"
    if (runs["file_type"] == "F16").any():
        speeds += f" (F16 at {top}: {gen('F16', top)})"
    return [f"* **Edge** (`06_edge`{label}, llama.cpp via xllamacpp on the host's {cores} CPU cores, "
            f"{int(runs['input_len'].iloc[0])} tokens in, {int(runs['output_len'].iloc[0])} out; {names}): "
            f"Q4_K_M files " + " / ".join(size(m) for m in models) + f"; {speeds}."]


def energy_lines() -> list[str]:
    v = reference_view("03_batch_scaling")
    if v is None:
        return []
    from ..experiments import energy_report

    t = energy_report.table_from(v.table("telemetry"), v.table("runs"), v.table("configs"))
    return [f"* **Energy readings** (`03_batch_scaling`'s traces, {len(t)} engines): "
            + energy_report.verdict(t)[0].upper() + energy_report.verdict(t)[1:]]


def claims_lines() -> list[str]:
    path = reference_dir() / "00_report" / "claims.json"
    if not path.exists():
        return []
    table = pd.DataFrame(json.loads(path.read_text()))
    counts = table["verdict"].value_counts()
    text = ", ".join(f"{int(counts[k])} {k}" for k in ("holds", "contradicted", "not supported", "not comparable",
                                                       "untestable") if k in counts)
    return [f"* **Every claim of the articles** ({len(table)}) beside our measurement: {text}. The table with "
            f"each verdict's reason: [`docs/claims.md`](docs/claims.md).{other_sources()}"]


def other_sources() -> str:
    """Run folders the report read from outside the H100 references (its ``runs`` key),
    each with the commit that measured it."""
    params = RunView(reference_dir() / "00_report").params_file() or {}
    parts = []
    for nb, folder in sorted(((params.get("params") or {}).get("runs") or {}).items()):
        env = RunView(paths.project_root() / folder).environment()
        parts.append(f"{nb} from `{folder}` (measured by {(env.get('git_commit') or '')[:7] or 'an unrecorded commit'})")
    return f" Besides the H100 folders the report read {'; '.join(parts)}." if parts else ""


def compare_lines() -> list[str]:
    out = []
    for name, what in (("compare_old_new", "The previous H100 references against these"),
                       ("compare_h100_h200", "The H200 against the H100")):
        folder = reference_dir() / name
        # one comparison, or a study's: one per notebook (05_compare over two studies)
        found = [folder / "comparison.json"] if (folder / "comparison.json").exists() else \
            sorted(folder.glob("*/comparison.json"))
        for path in found:
            c = json.loads(path.read_text())
            rows = pd.read_csv(path.with_name("comparison.csv"))
            tp = rows[rows["metric"] == "output_tok_s"]["ratio_b_over_a"]
            extra = ""
            if "prediction_error_pct" in rows and rows["prediction_error_pct"].notna().any():
                err = rows["prediction_error_pct"].dropna()
                extra = (f"; the roofline model predicted those ratios within {err.abs().median():.0f}% "
                         f"(median, {err.min():+.0f}% to {err.max():+.0f}%)")
            out.append(f"* **{what}** (`05_compare` of `{c['notebook']}`, {link(path.parent)}): {c['sentence']} "
                       f"Throughput ratio B/A median {np.median(tp):.2f} ({tp.min():.2f} to {tp.max():.2f}){extra}."
                       + host_sentence(c))
    return out


def host_sentence(c: dict) -> str:
    """" The host, not the GPU, explains ..." from a comparison's notes, or ""."""
    from ..experiments.compare_host import HOST_NOTE

    host = [n for n in c.get("notes", []) if n.startswith(HOST_NOTE)]
    return f" {host[0][0].upper()}{host[0][1:]}." if host else ""


def rerun_lines() -> list[str]:
    """Each committed re-run of the study (``rerun_<commit>/``: the study command's folders,
    lean) against the references: per notebook, the comparison's verdict and, where the
    host explains differences, which (compare's notes)."""
    out = []
    for folder in sorted(reference_dir().glob("rerun_*")):
        parts = []
        for path in sorted(folder.glob("compare/*/comparison.json")):
            c = json.loads(path.read_text())
            a, b = (x[:7] for x in c["commits"])
            parts.append(f"`{c['notebook']}` ({a} against {b}): {c['sentence']}" + host_sentence(c))
        if parts:
            out.append(f"* **A re-run of the whole study against these references** ({link(folder)}, `05_compare` "
                       "for each notebook): " + " ".join(parts))
    return out


def serving_fidelity_lines(v: RunView, label: str = "") -> list[str]:
    """04's fidelity layer: our client against ``vllm bench serve`` and GuideLLM on the same
    server (the notebook's own verdict sentence), and what the steady-state windows held,
    with the open-loop levels the server could not keep up with named."""
    from ..experiments import serving

    p = params_of(v)
    from ..serving.spec import BenchServeCheck

    bs = p["bench_serve"]
    tol = bs["tolerance_pct"]
    rows = v.table("serve_crosscheck")
    check = serving.bench_serve_rows(rows, tol)
    models = ", ".join(display_name(m) for m in p["models"])
    # folders measured before per_user existed sent `requests` at every level (per_user 0)
    spec = BenchServeCheck(concurrency=tuple(bs["concurrency"]), requests=bs["requests"], per_user=bs.get("per_user", 0))
    more = [f"{spec.requests_at(c):,} at {c}" for c in spec.concurrency if spec.requests_at(c) > spec.requests]
    sent = f"{spec.requests} requests per level" + (f" ({', '.join(more)} users: {spec.per_user} per user)" if more else "")
    lines = [f"* **Serving cross-check** ({models}, closed loop at "
             f"{', '.join(str(c) for c in spec.concurrency)} users, {sent}, {bs['rounds']} rounds;{label}): "
             + serving.crosscheck_sentence(check, rows, tol)]
    failed = check[check["verdict"] == "not measured"] if "verdict" in check else check.iloc[:0]
    for tool, f in failed.groupby("tool", sort=True):
        why = f["why"].iloc[0].split(": ", 1)[-1].split(". ")[0]  # the error's first sentence
        lines.append(f"  {serving.TOOL_NAMES.get(tool, tool)}: {len(f)} levels not measured ({why}).")
    lv = v.table("levels")
    if "window_s" in lv and lv["window_s"].notna().any():
        flagged = lv["overloaded"].fillna(False).astype(bool) if "overloaded" in lv else False
        over = lv[(lv["errors"].fillna(0) > 0) | flagged]
        ss = p["steady_state"]
        text = (f"  Steady-state windows (at least {ss['min_s']:g} s and {ss['per_user']} completed requests per "
                f"user): {number(lv['window_s'].min())}-{number(lv['window_s'].max())} s, "
                f"{int(lv['completed'].min()):,}-{int(lv['completed'].max()):,} requests per level")
        # a stopped level sent more than its window counts: say what became of all it sent
        sent = serving.sent_failures(v.table("requests") if not over.empty else pd.DataFrame()) \
            .set_index(["model", "mode", "level"])
        for _, r in over.iterrows():
            stopped = f"stopped past capacity after {number(r['duration_s'])} s, " if r.get("overloaded") is True else ""
            errors = json.loads(r["error_counts"] or "{}")
            key, n = (r["model"], r["mode"], r["level"]), int(r["requests"])
            all_sent = sent.loc[key] if key in sent.index else None
            if r["errors"] > 0:
                failed = (f"{int(r['errors']):,} of {n:,} requests failed "
                          f"({', '.join(f'{k}: {v:,}' for k, v in errors.items())})")
            elif all_sent is not None and all_sent["sent"] > n:
                failed = (f"none of the {all_sent['sent']:,} requests it sent failed ({n:,} in its window)"
                          if all_sent["failed"] == 0 else f"none of the {n:,} in its window failed "
                          f"({all_sent['failed']:,} of the {all_sent['sent']:,} it sent did, outside it)")
            else:
                failed = f"none of its {n:,} requests failed"
            text += (f"; at {r['level']:g} {'requests/s' if r['mode'] == 'rate' else 'users'} "
                     f"{display_name(r['model'])} fell behind: {stopped}{failed}, "
                     f"first token p50 {number(r['ttft_p50_s'])} s, our client's send lag p99 "
                     f"{number(r['send_lag_p99_s'])} s")
        lines.append(text + ".")
    return lines


def batch_fidelity_lines(v: RunView, label: str = "") -> list[str]:
    """03's fidelity layer: our throughput against ``vllm bench latency`` at each
    cross-check batch (the rounds' pooled medians, the difference's 95% CI and the
    notebook's verdict), against ``vllm bench throughput`` at the largest, and what
    streaming and timing every token costs (the harness A/B)."""
    from ..experiments import batch_scaling, harness_cost

    study = FolderStudy(v, batch_scaling.Params)
    p, xc = study.params, study.params.bench_latency
    cells, methods, latency = {}, set(), pd.DataFrame()
    for tool in ("latency", "throughput"):
        df = batch_scaling.crosscheck(study, tool)
        pooled = df[df["round"] == "all"]
        if tool == "latency":
            methods, latency = set(pooled["ci_method"]), df
        for _, r in pooled.iterrows():
            cells.setdefault((tool, r["model"]), []).append(
                f"{batch_scaling.crosscheck_cell(r)} "
                f"({number(r['slmstudy_median_tok_s'])} vs {number(r['bench_median_tok_s'])} tok/s)"
                if np.isfinite(r["median_difference_pct"]) else f"batch {r['batch']} not measured")
    if not cells:
        return []
    w = p.workload
    parts = [f"{display_name(m)} against `vllm bench {tool}`: " + ", ".join(c) for (tool, m), c in cells.items()]
    # the CI's basis as the notebook computed it (its ci_method): the rounds' own differences,
    # or a bootstrap inside the processes seen, which says little of the host
    basis = ("the CI from the rounds' differences" if methods == {"rounds"} else
             f"the CI a bootstrap inside {'one pair' if xc.rounds == 1 else f'{xc.rounds} pairs'} of processes")
    lines = [f"* **Cross-check with vLLM's own benchmarks** ({w.input_len} in / {w.output_len} out, "
             f"{xc.rounds} round{'s' if xc.rounds != 1 else ''} of fresh processes, {xc.iters} iterations each, "
             f"medians, {basis}, tolerance {xc.tolerance_pct:g}%;{label}): " + "; ".join(parts) + "."]
    conditions = batch_scaling.crosscheck_conditions_sentence(batch_scaling.crosscheck_conditions(latency))
    if conditions:
        lines.append(f"  {conditions}")
    if p.harness_check is not None:
        h = batch_scaling.harness(study)
        if "verdict" in h:
            lines.append(f"  What streaming and timing every token costs (streamed against final-output-only runs "
                         f"in one engine, ABBA, {p.harness_check.pairs} pairs): " + "; ".join(
                             f"{display_name(m)}: " + ", ".join(f"batch {r['batch']} {r['slowdown_pct']:+.2f}% "
                                                               f"{r['ci95']} {r['verdict']}" for _, r in g.iterrows())
                             for m, g in h.groupby("model", sort=False)) + ".")
        d = harness_cost.delivered(h)
        if not d.empty:
            lines.append("  On the engine core's own clock, what streaming adds after the core's last step "
                         "(lag streamed against final only, share of the run): " + "; ".join(
                             f"{display_name(m)}: " + ", ".join(
                                 f"batch {r['batch']} {r['delivery_cost_pct']:+.3f}% {r['delivery_ci95']} "
                                 f"{r['delivery_verdict']} ({number(r['lag_stream_ms'])} vs "
                                 f"{number(r['lag_final_ms'])} ms)" for _, r in g.iterrows())
                             for m, g in d.groupby("model", sort=False)) + ".")
    return lines + frontend_lines(v, "", study)


def frontend_lines(v: RunView, label: str = "", study: FolderStudy | None = None) -> list[str]:
    """03's front-end A/B: ``AsyncLLM`` against ``LLM.generate`` inside one process
    (``frontend_cost``): a bullet of its own when its folder is (``label``), else a
    line under the cross-check's."""
    from ..experiments import batch_scaling, frontend_cost

    study = study or FolderStudy(v, batch_scaling.Params)
    f = study.params.frontend_check
    table = batch_scaling.frontends(study) if f is not None else pd.DataFrame()
    if "stream_vs_llm_pct" not in table:
        return []
    text = frontend_cost.sentence(table, display_name)
    if not label:
        return [f"  {text}"]
    return [f"* **Our front end against `vllm bench latency`'s: `AsyncLLM` and `LLM.generate` in one process** ({f.input_len} in / {f.output_len} out, "
            f"each engine given {f.memory_share:g} of the device's memory, target ±{f.target_pct:g}%;{label}): {text}"]


# Opt-in layers' evidence (``-f`` files beyond the default study), each folder measured
# by its own commit and named as such: the default study's folders above are one commit's.
LAYER_LINES: dict[str, tuple[str, Callable[..., list[str]]]] = {
    "02_precision_fourbit": ("params/02_precision/fourbit_gpu.yaml", precision_lines),
    "06_edge_sweep": ("params/06_edge/sweep_gpu.yaml", edge_lines),
    "03_batch_scaling_fidelity": ("params/03_batch_scaling/fidelity_gpu.yaml", batch_fidelity_lines),
    "03_batch_scaling_frontends": ("params/03_batch_scaling/fidelity_gpu.yaml", frontend_lines),
    "03_batch_scaling_frontends_llama": ("params/03_batch_scaling/fidelity_gpu.yaml", frontend_lines),
    "04_serving_fidelity": ("params/04_serving/fidelity_gpu.yaml", serving_fidelity_lines),
}


def layer_lines() -> list[str]:
    out = []
    for name, (layer, lines) in LAYER_LINES.items():
        folder = reference_dir() / name
        if (folder / "tables").is_dir():
            v = RunView(folder)
            # a one-off file beside the layer (a model left out, fewer rounds): its keys are in params.yaml
            pf = v.params_file() or {}
            extra = set(pf.get("sources", [])) - {f"params/{pf.get('notebook')}/{pf.get('profile')}.yaml", layer}
            also = " and a one-off file (its keys in the folder's `params.yaml`)" if extra else ""
            out += lines(v, f" with the layer `{layer}`{also}, measured by {commit_of(v)} in {link(folder)}")
    return out


def provenance_line() -> str:
    """Which commits measured the references quoted: one, or say there are several.
    The report measures nothing: its rows are the notebooks' (its own record is of
    the execution), so it is named apart."""
    commits = {}
    for nb in ("01_model_vs_model", "02_precision", "03_batch_scaling", "04_serving", "06_edge"):
        v = reference_view(nb) or (RunView(reference_dir() / nb) if (reference_dir() / nb / "environment.json").exists() else None)
        if v is not None:
            env = v.environment()
            commits[nb] = (env.get("git_commit") or "")[:7] or "not recorded"
    executed = (RunView(reference_dir() / "00_report").environment().get("git_commit") or "")[:7]
    tail = f" The report (`00_report`, measuring nothing) was executed over them by {executed}." if executed else ""
    if len(set(commits.values())) <= 1:
        return (f"The default study's folders ({', '.join(f'`{nb}`' for nb in commits)}) were all measured by "
                f"commit {next(iter(commits.values()), 'n/a')} (`tools/h100.sh study`); the folders of opt-in layers "
                f"(`-f` files) and earlier checks name their own.{tail}")
    return ("**These folders were measured by different commits** (" + ", ".join(f"{nb}: {c}" for nb, c in
            commits.items()) + "); `tools/h100.sh study` regenerates all of them from one commit." + tail)
