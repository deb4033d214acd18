"""06_edge: the articles' edge claims, with llama.cpp on the host's CPU cores.

Article 001 runs DeepSeek-R1-Distill-Qwen-1.5B as a GGUF Q4_K_M file on phones
and boards (100 tokens in, 512 out) and article 000 quotes the Q4 files' sizes.
No phone is lent; what can be measured honestly is:

* the files themselves: GGUF files of the real architectures, built with random
  weights in the tensor types llama.cpp's own quantizer would choose
  (``gguf_files``), measured on disk;
* llama.cpp running them on the cores at hand, one process per (model, file
  type, thread count), the article's test on each: prompt processing and
  generation speed, time to first token, resident memory, CPU use;
* what the article's devices would need: decoding one token reads (almost) every
  weight once, so a claimed speed times the bytes read per token is a memory
  bandwidth the device must have; set beside its published bandwidth.

Batch is one throughout: one user on one device, as the articles test it.
"""

from __future__ import annotations

import textwrap
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import AfterValidator, Field

from .. import catalog, claims, gguf_files, stats
from ..edge import checks
from ..edge.spec import EdgeJob, EdgePoint, EdgeSpec, GgufFileJob
from ..figures import finish, model_name, styled
from ..jobs import Job
from ..params import MAX_LIST, ModelKey, Problem, Repetitions, Strict, StudyParams, Tokens, Warmup
from .base import Experiment, Study

NOTEBOOK = "06_edge"


def _known_file_type(value: str) -> str:
    if value not in gguf_files.FILE_TYPES:
        raise ValueError(f"unknown GGUF file type {value!r}; allowed: {', '.join(gguf_files.FILE_TYPES)}")
    return value


FileType = Annotated[str, AfterValidator(_known_file_type)]
ThreadCount = Annotated[int, Field(gt=0, le=1024)]


class EdgeWorkload(Strict):
    """One request of ``input_len`` prompt tokens and ``output_len`` generated tokens."""

    input_len: Tokens = 100  # article 001's speed test
    output_len: Tokens = 512
    repetitions: Repetitions = 3
    warmup: Warmup = 1


class FileSizes(Strict):
    """GGUF files built only to be measured (the real architectures' sizes on a
    machine too small to run them in reasonable time)."""

    models: list[ModelKey] = Field(min_length=1, max_length=16)
    file_types: list[FileType] = Field(min_length=1, max_length=MAX_LIST)


class Params(StudyParams):
    file_types: list[FileType] = Field(min_length=1, max_length=MAX_LIST)
    # "auto": 1, 2, 4, ... and the number of cores this process may use.
    threads: list[ThreadCount] | Literal["auto"] = "auto"
    workload: EdgeWorkload = Field(default_factory=EdgeWorkload)
    file_sizes: FileSizes | None = None

    def check(self) -> list[Problem]:
        out = []
        if self.weights != "dummy":
            out.append(Problem(("weights",), "06_edge runs GGUF files built with random weights; pretrained GGUF "
                                             "files are not supported: use weights: dummy"))
        need = self.workload.input_len + self.workload.output_len
        for i, model in enumerate(self.models):
            context = int(catalog.model(model).hf_config().get("max_position_embeddings", 0) or 0)
            if context and need > context:
                out.append(Problem(("workload.input_len", "workload.output_len", f"models[{i}]"),
                                   f"input_len + output_len = {need} exceeds {model}'s context of {context} tokens"))
        return out

    def machine_check(self) -> list[Problem]:
        if self.threads == "auto":
            return []
        return [Problem((key,), msg) for key, msg in checks.thread_problems(self.threads)]


def thread_counts(threads: list[int] | str, cores: int) -> list[int]:
    """``auto``: powers of two below ``cores``, then ``cores`` itself (article 001's
    "4 threads on mobile" is one of them wherever there are at least 4 cores)."""
    if threads != "auto":
        return sorted(set(threads))  # type: ignore[arg-type]
    out, t = [], 1
    while t < cores:
        out.append(t)
        t *= 2
    return out + [cores]


def n_ctx(workload: EdgeWorkload) -> int:
    """The context llama.cpp allocates: the request, rounded up to 256 tokens."""
    need = workload.input_len + workload.output_len
    return -(-need // 256) * 256


def jobs(p: Params) -> list[Job]:
    out: list[Job] = []
    if p.file_sizes:
        out += [GgufFileJob(model=m, file_type=t, seed=p.seed) for m in p.file_sizes.models
                for t in p.file_sizes.file_types]
    point = EdgePoint(input_len=p.workload.input_len, output_len=p.workload.output_len,
                      repetitions=p.workload.repetitions, warmup=p.workload.warmup)
    for model in p.models:
        for file_type in p.file_types:
            for threads in thread_counts(p.threads, checks.cores_present()[0]):
                spec = EdgeSpec(model=model, file_type=file_type, threads=threads, n_ctx=n_ctx(p.workload),
                                telemetry=p.telemetry, seed=p.seed)
                out.append(EdgeJob(engine=spec, point=point, timeout_s=p.config_timeout_s))
    return out


EXPERIMENT = Experiment(NOTEBOOK, "Edge: GGUF files and llama.cpp on CPU cores", Params, jobs)


# ------------------------------------------------------------------ analysis
GB = 1e9


def files(study: Study[Params]) -> pd.DataFrame:
    """Every GGUF file measured: size on disk, bits per weight, tensor types."""
    df = study.table("gguf_files")
    if df.empty:
        return df
    return file_table(df)


def file_table(df: pd.DataFrame) -> pd.DataFrame:
    out = df.assign(size_gb=df["size_bytes"] / GB, size_gib=df["size_bytes"] / 2**30)
    cols = ["model", "file_type", "size_bytes", "size_gb", "size_gib", "bits_per_weight", "n_params",
            "bytes_read_per_token", "tensor_types"]
    return out[[c for c in cols if c in out]].sort_values(["model", "size_bytes"]).reset_index(drop=True)


SIZE_CLAIMS = ("a000-gguf-q4-deepseek", "a000-gguf-q4-llama", "a001-gguf-q4")
CONSISTENCY_CLAIMS = ("a001-speed-iphone-consistency", "a001-speed-m1-consistency", "a001-speed-rk3588-consistency",
                      "a001-rk3588-thousand-tokens", "a001-speed-iphone-bandwidth", "a001-speed-m1-bandwidth",
                      "a001-speed-rk3588-bandwidth")


def size_claims(files_df: pd.DataFrame, source: str) -> pd.DataFrame:
    """The articles' GGUF size claims judged against the measured files (the same
    judge and measurement rows as 00_report)."""
    from .claim_measurements import gguf_metrics

    rows = gguf_metrics(files_df, source)
    meas = pd.DataFrame(rows, columns=claims.MEASUREMENT_COLUMNS)
    mine = [c for c in claims.load() if c.id in SIZE_CLAIMS]
    return claims.judge(mine, meas, "any")[["id", "claim", "claimed", "ours", "verdict", "reason"]]


def consistency_claims() -> pd.DataFrame:
    """Article 001's device rows checked against their own arithmetic and against what
    each device's published bandwidth allows at the Q4 floor (claims.yaml)."""
    mine = [c for c in claims.load() if c.id in CONSISTENCY_CLAIMS]
    empty = pd.DataFrame(columns=claims.MEASUREMENT_COLUMNS)
    return claims.judge(mine, empty, "any")[["id", "claim", "claimed", "ours", "verdict", "reason"]]


SPEED_METRICS = ["prompt_tok_s", "gen_tok_s", "ttft_s", "wall_s", "output_tok_s", "rss_peak_mib", "rss_anon_mib",
                 "proc_cpu_pct_mean", "other_cpu_cores_mean"]


def speed(study: Study[Params]) -> pd.DataFrame:
    """Per model, file type and thread count: the article's test, mean and 95% CI
    over repetitions."""
    runs = study.table("runs")
    if runs.empty:
        return runs
    return speed_table(runs)


def speed_table(runs: pd.DataFrame) -> pd.DataFrame:
    metrics = [m for m in SPEED_METRICS if m in runs]
    out = stats.summarize(runs, ["model", "file_type", "threads"], metrics)
    return out.sort_values(["model", "file_type", "threads"]).reset_index(drop=True)


def achieved_bandwidth(speed_df: pd.DataFrame, files_df: pd.DataFrame) -> pd.DataFrame:
    """Generation speed times the bytes one generated token reads (``files_df``: the
    run's ``configs`` or ``gguf_files``, per model and file type): the memory
    bandwidth llama.cpp drew on at each thread count (the weights dominate the
    traffic at a 612-token context; the KV cache adds under 1%)."""
    if speed_df.empty or "bytes_read_per_token" not in files_df:
        return pd.DataFrame()
    per_file = files_df.drop_duplicates(["model", "file_type"]).set_index(["model", "file_type"])["bytes_read_per_token"]
    rows = []
    for _, r in speed_df.iterrows():
        key = (r["model"], r["file_type"])
        if key not in per_file.index:
            continue
        rows.append({"model": r["model"], "file_type": r["file_type"], "threads": r["threads"],
                     "gen_tok_s": r["gen_tok_s"], "gb_per_token": per_file[key] / GB,
                     "achieved_gb_s": r["gen_tok_s"] * per_file[key] / GB})
    return pd.DataFrame(rows)


# Article 001's device speeds (claim id -> device, the GGUF type to read it with).
# Q4_K_M is the smallest file the study builds and the one the article names
# (the RK3588's "INT4" is the same 4.5-5 bits per weight): the most lenient reading.
DEVICE_CLAIMS = {
    "a001-speed-iphone": ("a17-pro", "Q4_K_M"),
    "a001-speed-m1": ("m1", "Q4_K_M"),
    "a001-speed-rk3588": ("rk3588", "Q4_K_M"),
}


def claimed_speeds() -> pd.DataFrame:
    """The claimed tokens/s of DEVICE_CLAIMS, read from claims.yaml (never retyped),
    plus the RK3588 table's own arithmetic: its 512 tokens in 16 s."""
    by_id = {c.id: c for c in claims.load()}
    rows = [{"claim": cid, "device": dev, "file_type": ft, "claimed_tok_s": float(by_id[cid].value)}
            for cid, (dev, ft) in DEVICE_CLAIMS.items()]
    table = by_id["a001-speed-rk3588-consistency"]
    rows.append({"claim": "a001-speed-rk3588-consistency", "device": "rk3588", "file_type": "Q4_K_M",
                 "claimed_tok_s": table.inputs["tokens"] / table.inputs["seconds"]})
    return pd.DataFrame(rows)


def device_needs(claimed: pd.DataFrame, files_df: pd.DataFrame, devices: dict[str, catalog.DeviceSpec],
                 model: str = "deepseek-r1-distill-qwen-1.5b") -> pd.DataFrame:
    """What each claimed device speed asks of its memory: claimed tokens/s times
    the bytes one token reads from ``model``'s file of the claimed type, against
    the device's published bandwidth. Above 100% the claim is impossible for a
    decoder that reads its weights once per token; near it, implausible (CPUs
    and NPUs reach 60-90% of their peak in practice)."""
    per_file = files_df[files_df["model"] == model].set_index("file_type")["bytes_read_per_token"]
    rows = []
    for _, c in claimed.iterrows():
        dev = devices[c["device"]]
        if c["file_type"] not in per_file.index:
            continue
        read = float(per_file[c["file_type"]])
        need = c["claimed_tok_s"] * read / GB
        rows.append({
            "device": dev.display, "claim": c["claim"], "claimed_tok_s": c["claimed_tok_s"],
            "file_type": c["file_type"], "gb_per_token": read / GB, "needed_gb_s": need,
            "published_gb_s": dev.bandwidth_gb_s, "needed_pct_of_published": 100 * need / dev.bandwidth_gb_s,
            "verdict": bandwidth_verdict(need, dev.bandwidth_gb_s),
        })
    return pd.DataFrame(rows)


def devices_table() -> pd.DataFrame:
    """The devices' published bandwidths and where they come from."""
    return pd.DataFrame([vars(d) for d in catalog.devices().values()])


def bandwidth_verdict(needed_gb_s: float, published_gb_s: float) -> str:
    ratio = needed_gb_s / published_gb_s
    if ratio > 1:
        return f"impossible: needs {ratio:.1f}x the device's memory bandwidth"
    if ratio > 0.8:
        return f"implausible: needs {100 * ratio:.0f}% of the device's peak bandwidth"
    return f"possible: needs {100 * ratio:.0f}% of the device's peak bandwidth"


@styled
def scaling_figure(study: Study[Params], speed_df: pd.DataFrame) -> Any:
    """Generation and prompt speed against threads, one line per file type, one
    column per model."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(speed_df["model"]))
    fig, axes = plt.subplots(2, len(models), figsize=(6.2 * len(models), 8), squeeze=False, layout="constrained")
    for j, model in enumerate(models):
        mine = speed_df[speed_df["model"] == model]
        for i, (col, label) in enumerate([("gen_tok_s", "generation (tok/s)"), ("prompt_tok_s", "prompt (tok/s)")]):
            ax = axes[i][j]
            for ft, g in mine.groupby("file_type", sort=False):
                g = g.sort_values("threads")
                err = [g[col] - g[f"{col}_lo"], g[f"{col}_hi"] - g[col]]
                ax.errorbar(g["threads"], g[col], yerr=err, marker="o", capsize=3, label=ft)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(mine["threads"].unique()))
            ax.get_xaxis().set_major_formatter(plt.ScalarFormatter())
            ax.set_xlabel("threads")
            ax.set_ylabel(label)
            if i == 0:
                ax.set_title(textwrap.fill(model_name(model), 45), fontsize=11)
            ax.legend(title="GGUF", fontsize=9)
    return finish(fig, study, "edge_scaling", caption(study))


def caption(study: Study[Params]) -> str:
    """Device, engine and weights, as every figure says them (the vLLM version, which
    ``Study.caption`` names, plays no part here)."""
    env = study.environment()
    cfg = study.table("configs")
    version = cfg["engine_version"].dropna().iloc[0] if "engine_version" in cfg and cfg["engine_version"].notna().any() \
        else "?"
    device = f"CPU ({env.get('cpu_model')}, {env.get('cpu_count_logical')} cores)"
    return f"{device} | llama.cpp via xllamacpp {version} | random weights in GGUF files | one request at a time"
