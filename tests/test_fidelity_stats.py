"""The fidelity checks' statistics on hand-computed answers: the difference of two
tools' medians with its CI (rounds or bootstrap), the verdict rule, and the
harness A/B's slowdown per ABBA pair."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from slmstudy import stats
from slmstudy.experiments import harness_cost


def test_difference_of_pooled_medians():
    # pooled medians 102 and 100 -> +2.0%, whatever the rounds' split
    ours = [[101.0, 102.0, 103.0], [102.0, 110.0, 90.0]]
    theirs = [[100.0, 99.0, 101.0], [100.0, 100.0, 100.0]]
    d = stats.relative_difference_ci(ours, theirs)
    assert d["difference_pct"] == pytest.approx(2.0)
    assert d["rounds"] == 2 and d["method"] == "bootstrap"
    assert d["ci_lo"] <= 2.0 <= d["ci_hi"]


def test_ci_from_rounds_is_t_over_the_rounds_differences():
    # round medians: ours 101, 102, 103 against 100 each -> differences 1, 2, 3 %
    ours = [[101.0], [102.0], [103.0]]
    theirs = [[100.0], [100.0], [100.0]]
    d = stats.relative_difference_ci(ours, theirs)
    # mean 2, s = 1, t(0.975, 2) = 4.303 -> 2 +- 4.303 / sqrt(3) = 2 +- 2.484
    assert d["method"] == "rounds" and d["rounds"] == 3
    assert d["difference_pct"] == pytest.approx(2.0)
    assert d["ci_lo"] == pytest.approx(2 - 2.484, abs=1e-3) and d["ci_hi"] == pytest.approx(2 + 2.484, abs=1e-3)


def test_bootstrap_of_identical_values_has_no_width_and_rounds_without_data_are_dropped():
    d = stats.relative_difference_ci([[110.0, 110.0], []], [[100.0, 100.0], [100.0]])
    assert d["rounds"] == 1 and d["difference_pct"] == pytest.approx(10.0)
    assert d["ci_lo"] == pytest.approx(10.0) and d["ci_hi"] == pytest.approx(10.0)
    empty = stats.relative_difference_ci([[]], [[1.0]])
    assert empty["rounds"] == 0 and np.isnan(empty["difference_pct"])


def test_bootstrap_ci_widens_with_the_spread():
    rng = np.random.default_rng(1)
    tight = stats.relative_difference_ci([rng.normal(100, 1, 30)], [rng.normal(100, 1, 30)])
    loose = stats.relative_difference_ci([rng.normal(100, 10, 30)], [rng.normal(100, 10, 30)])
    assert (loose["ci_hi"] - loose["ci_lo"]) > 3 * (tight["ci_hi"] - tight["ci_lo"])


@pytest.mark.parametrize("diff, lo, hi, verdict", [
    (2.0, -5.0, 9.0, "agrees"),          # within the 3% tolerance, whatever the CI
    (-4.0, -8.0, 0.5, "agrees"),         # beyond it, but the CI holds 0 and is +-4.25 wide
    (-4.0, -12.0, 4.0, "inconclusive"),  # holds 0 but +-8 wide
    (6.0, 4.0, 8.0, "differs"),          # CI excludes 0
    (6.0, float("nan"), float("nan"), "inconclusive"),
    (float("nan"), 0.0, 0.0, "not measured"),
])
def test_agreement_verdict(diff, lo, hi, verdict):
    assert stats.agreement_verdict(diff, lo, hi, tolerance_pct=3.0, max_half_width_pct=5.0) == verdict


def test_harness_slowdown_per_abba_pair():
    # pair 0: final 100, stream 99 -> 1%; pair 1: final 200, stream 196 -> 2%; pair 2: 3%
    rows = []
    for pair, (final, stream) in enumerate([(100.0, 99.0), (200.0, 196.0), (100.0, 97.0)]):
        rows += [{"model": "m", "batch": 8, "pair": pair, "mode": "final", "output_tok_s": final, "short_outputs": 0},
                 {"model": "m", "batch": 8, "pair": pair, "mode": "stream", "output_tok_s": stream,
                  "short_outputs": 0}]
    rows.append({"model": "m", "batch": 8, "pair": 3, "mode": "final", "output_tok_s": 50.0, "short_outputs": 1})
    df = harness_cost.rows(pd.DataFrame(rows), target_pct=1.0)
    r = df.iloc[0]
    assert r["pairs"] == 3  # the unpaired run is left out of the slowdown, counted in short_outputs
    assert r["slowdown_pct"] == pytest.approx(2.0) and r["slowdown_median_pct"] == pytest.approx(2.0)
    # s = 1, t(0.975, 2) = 4.303: [2 - 2.484, 2 + 2.484]
    assert r["slowdown_ci_lo"] == pytest.approx(-0.484, abs=1e-3)
    assert r["verdict"] == "not settled at 1% by 3 pairs" and r["short_outputs"] == 1
    assert harness_cost.rows(pd.DataFrame(rows), target_pct=5.0).iloc[0]["verdict"] == "under 5%"
    assert harness_cost.rows(pd.DataFrame(rows[:2]), target_pct=0.5).iloc[0]["pairs"] == 1


def test_harness_delivery_splits_each_run_on_the_core_clock():
    # Three pairs at batch 64, worked by hand. Each run: wall = core part + lag.
    #   pair 0: final wall 2.000 s (lag 4 ms), stream wall 2.010 s (lag 14 ms): delivery (14 - 4) / 2000 = 0.5%
    #   pair 1: final 2.000 (lag 5 ms), stream 2.007 (lag 11 ms): 6 / 2000 = 0.3%
    #   pair 2: final 2.500 (lag 4 ms), stream 2.510 (lag 14 ms): 10 / 2500 = 0.4%
    # mean 0.4%, s = 0.1, t(0.975, 2) = 4.303: half-width 0.2484 -> [0.1516, 0.6484], under 1%
    # core parts: pair 0 1.996 vs 1.996 (0%), pair 1 1.995 vs 1.996 (+0.0501%), pair 2 2.496 vs 2.496 (0%)
    runs = [(0, 2.000, 0.004, 2.010, 0.014), (1, 2.000, 0.005, 2.007, 0.011), (2, 2.500, 0.004, 2.510, 0.014)]
    rows = []
    for pair, fw, fl, sw, sl in runs:
        for mode, wall, lag, cpu in (("final", fw, fl, 0.2 * fw), ("stream", sw, sl, 0.6 * sw)):
            rows.append({"model": "m", "batch": 64, "pair": pair, "mode": mode, "output_tok_s": 64 * 256 / wall,
                         "short_outputs": 0, "done_wall_s": wall, "lag_s": lag, "core_wall_s": wall - lag,
                         "main_cpu_s": cpu})
    r = harness_cost.rows(pd.DataFrame(rows), target_pct=1.0).iloc[0]
    assert r["delivery_cost_pct"] == pytest.approx(0.4)
    assert r["delivery_ci_lo"] == pytest.approx(0.1516, abs=1e-4) and r["delivery_ci_hi"] == pytest.approx(0.6484, abs=1e-4)
    assert r["delivery_verdict"] == "under 1%"
    assert r["lag_stream_ms"] == pytest.approx(14.0) and r["lag_final_ms"] == pytest.approx(4.0)
    assert r["core_slowdown_pct"] == pytest.approx(100 * (1.996 - 1.995) / 1.996 / 3)
    assert r["main_busy_stream_pct"] == pytest.approx(60.0) and r["main_busy_final_pct"] == pytest.approx(20.0)
    # the same runs judged at 0.5%: the CI straddles it
    assert harness_cost.rows(pd.DataFrame(rows), target_pct=0.5).iloc[0]["delivery_verdict"] == \
        "not settled at 0.5% by 3 pairs"
    # runs journaled before the core clock existed: the whole-run reading stays, delivery says why not
    old = pd.DataFrame(rows).drop(columns=["done_wall_s", "lag_s", "core_wall_s", "main_cpu_s"])
    r = harness_cost.rows(old, target_pct=1.0).iloc[0]
    assert r["pairs"] == 3 and r["delivery_verdict"] == "not measured: no core clock in these runs"
    assert "core's own clock" not in harness_cost.verdict(harness_cost.rows(old, 1.0))


# ---------------------------------------------------------------- serving cross-check
def test_bench_serve_result_becomes_a_level_row_in_seconds():
    from slmstudy.serving.bench_serve import row_from_result

    row = row_from_result({"completed": 6, "failed": 1, "duration": 2.0, "output_throughput": 24.0,
                           "request_throughput": 3.0, "total_output_tokens": 48, "total_input_tokens": 150,
                           "mean_ttft_ms": 30.0, "p50_ttft_ms": 25.0, "p90_ttft_ms": 80.0, "p99_ttft_ms": 99.0,
                           "p50_itl_ms": 12.5, "p90_e2el_ms": 500.0})
    assert (row["requests"], row["completed"], row["errors"]) == (7, 6, 1)
    assert row["ttft_mean_s"] == pytest.approx(0.030) and row["ttft_p90_s"] == pytest.approx(0.080)
    assert row["itl_p50_s"] == pytest.approx(0.0125) and row["e2e_p90_s"] == pytest.approx(0.5)
    assert row["output_tok_s"] == 24.0 and "tpot_p50_s" not in row


def test_bench_serve_gets_our_prompts_and_our_settings(tmp_path):
    from slmstudy.serving import bench_serve, tokenizer
    from slmstudy.serving.load import Workload

    w = Workload(api="chat", input_tokens=5, output_tokens=7, temperature=0.6, seed=3)
    bench_serve.write_prompts(tmp_path / "p.jsonl", w, 10, 3)
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert [json.loads(x)["prompt"] for x in lines] == [tokenizer.prompt_text(5, 3, i) for i in (10, 11, 12)]
    cmd = bench_serve.command("http://127.0.0.1:8000", "served", "/tok", w, 4, 3, tmp_path / "p.jsonl",
                              tmp_path / "r.json")
    arg = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    assert arg["--backend"] == "openai-chat" and arg["--endpoint"] == "/v1/chat/completions"
    assert arg["--max-concurrency"] == "4" and arg["--num-prompts"] == "3" and arg["--request-rate"] == "inf"
    assert arg["--custom-output-len"] == "7" and arg["--temperature"] == "0.6" and arg["--served-model-name"] == "served"
    # the chat template is the server's to add, as for our client; no shuffling of the prompts
    assert "--skip-chat-template" in cmd and "--ignore-eos" in cmd and "--disable-shuffle" in cmd


def _check_rows(values):
    rows = []
    for rnd, (ours, theirs) in enumerate(values, start=1):
        for tool, v in (("slmstudy", ours), ("bench_serve", theirs)):
            rows.append({"model": "m", "level": 8.0, "round": rnd, "tool": tool, "status": "ok",
                         "ttft_p50_s": v, "ttft_p90_s": v, "itl_p50_s": v, "tpot_p50_s": v, "output_tok_s": v})
    return pd.DataFrame(rows)


def test_serving_crosscheck_medians_over_rounds_and_their_ci():
    from slmstudy.experiments.serving import bench_serve_rows

    # per-round differences +1%, +2%, +3% -> medians 102 vs 100 = +2.0%, t CI 2 +- 2.484
    df = bench_serve_rows(_check_rows([(101.0, 100.0), (102.0, 100.0), (103.0, 100.0)]), 5.0)
    r = df[df["metric"] == "ttft_p50_s"].iloc[0]
    assert (r["tool"], r["slmstudy"], r["other"], r["rounds"]) == ("bench_serve", 102.0, 100.0, 3)
    assert r["median_difference_pct"] == pytest.approx(2.0)
    assert r["difference_ci_hi"] == pytest.approx(4.484, abs=1e-3) and r["verdict"] == "agrees"
    # two rounds: one value per round and tool, no interval; 10% apart: inconclusive, not "differs"
    two = bench_serve_rows(_check_rows([(110.0, 100.0), (110.0, 100.0)]), 5.0)
    assert np.isnan(two["difference_ci_lo"]).all() and set(two["verdict"]) == {"inconclusive"}


def test_serving_crosscheck_compares_each_tool_and_names_figures_a_tool_lacks():
    from slmstudy.experiments.serving import bench_serve_rows, bench_serve_verdict

    df = _check_rows([(100.0, 104.0), (100.0, 104.0)])
    g = df[df["tool"] == "bench_serve"].assign(tool="guidellm", itl_p50_s=float("nan"))
    g[["ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "output_tok_s"]] = 80.0
    out = bench_serve_rows(pd.concat([df, g], ignore_index=True), 5.0)
    gl = out[out["tool"] == "guidellm"].set_index("metric")
    # 100 vs 80: +25%; GuideLLM reports no pooled chunk gaps, so that figure is named, not compared
    assert gl.loc["ttft_p50_s", "median_difference_pct"] == pytest.approx(25.0)
    assert gl.loc["itl_p50_s", "verdict"] == "not reported" and "GuideLLM" in gl.loc["itl_p50_s", "why"]
    bs = out[out["tool"] == "bench_serve"].set_index("metric")
    assert bs.loc["output_tok_s", "median_difference_pct"] == pytest.approx(100 * (100 / 104 - 1))
    text = bench_serve_verdict(out, 5.0)
    assert "of 4 figures agree with GuideLLM" in text and "of 5 figures agree with vllm bench serve" in text


def test_guidellm_result_becomes_a_level_row_in_seconds():
    from slmstudy.serving import guidellm_run

    def dist(mean, p50, p90, p99, total=None):
        return {"successful": {"mean": mean, "total_sum": total,
                               "percentiles": {"p50": p50, "p90": p90, "p99": p99}}}

    data = {"benchmarks": [{"duration": 2.0, "metrics": {
        "request_totals": {"successful": 6, "errored": 1, "incomplete": 1, "total": 8},
        "output_token_count": dist(16, 16, 16, 16, total=96), "prompt_token_count": dist(32, 32, 32, 32, total=192),
        "time_to_first_token_ms": dist(30.0, 25.0, 50.0, 60.0), "inter_token_latency_ms": dist(8.0, 7.5, 9.0, 9.5),
        "request_latency": dist(0.15, 0.14, 0.17, 0.2)}}]}
    row = guidellm_run.row_from_result(data)
    assert (row["requests"], row["completed"], row["errors"]) == (8, 6, 2)
    # output tokens/s: completed requests' tokens over the duration, as ours and bench serve's
    assert row["output_tok_s"] == 48.0 and row["req_s"] == 3.0
    assert row["ttft_p90_s"] == pytest.approx(0.050) and row["tpot_p50_s"] == pytest.approx(0.0075)
    assert row["e2e_p99_s"] == pytest.approx(0.2) and "itl_p50_s" not in row
    assert row["requests_in_stats"] == 6
    # its scheduler made 4 and completed 4, its statistics hold 2 (a result CI produced on
    # 2026-12-06): the row counts what was made, the rates are over the 2 counted
    data["benchmarks"][0].update(scheduler_metrics={"requests_made": {"successful": 4, "errored": 0,
                                                                      "incomplete": 0, "total": 4}})
    data["benchmarks"][0]["metrics"].update(request_totals={"successful": 2, "errored": 0, "incomplete": 0, "total": 2},
                                            output_token_count=dist(8, 8, 8, 8, total=16))
    row = guidellm_run.row_from_result(data)
    assert (row["requests"], row["completed"], row["errors"], row["requests_in_stats"]) == (4, 4, 0, 2)
    assert row["output_tok_s"] == 8.0 and row["req_s"] == 1.0


def test_guidellm_command_sends_our_prompts_lengths_and_temperature(tmp_path):
    import json as _json

    from slmstudy.serving import guidellm_run
    from slmstudy.serving.load import Workload

    w = Workload(api="completions", input_tokens=16, output_tokens=7, temperature=0.6, seed=3, exact_counts=True)
    guidellm_run.write_prompts(tmp_path / "p.jsonl", w, first_index=4, n=2)
    lines = [_json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    from slmstudy.serving import tokenizer
    assert lines == [{"prompt": tokenizer.prompt_text(16, 3, i), "output_tokens_count": 7} for i in (4, 5)]
    cmd = guidellm_run.command("http://127.0.0.1:8000/v1", "served", w, 4, 32, tmp_path / "p.jsonl", tmp_path / "r.json")
    arg = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    backend = _json.loads(arg["--backend"])
    assert backend["target"] == "http://127.0.0.1:8000" and backend["model"] == "served"
    assert backend["request_format"] == "/v1/completions" and backend["extras"] == {"body": {"temperature": 0.6}}
    assert arg["--profile"] == "kind=concurrent,streams=4" and arg["--constraint"] == "kind=max_requests,count=32"


def test_serving_crosscheck_names_a_failed_run():
    from slmstudy.experiments.serving import bench_serve_rows

    df = _check_rows([(100.0, 100.0)])
    df.loc[df["tool"] == "bench_serve", "status"] = "failed"
    df["error"] = "ConnectionError: refused"
    out = bench_serve_rows(df, 5.0)
    assert list(out["verdict"]) == ["not measured"]
    assert out["why"].iloc[0] == "bench_serve round 1: ConnectionError: refused"


def test_each_tools_cpu_in_cores_by_hand():
    """Ours: CPU over the level's span (2, 3, 1 s over 4 s: 0.5, 0.75, 0.25 cores, median
    0.5). vllm bench serve: over its whole run in the host, which its CPU covers (6 s over
    10 s: 0.6; over its 5 s duration it would read 1.2). A failed round and a level of
    another size stay apart; rows without the column give no table."""
    import pandas as pd

    from slmstudy.experiments.serving import tool_cpu, tool_cpu_sentence

    rows = [{"tool": "slmstudy", "round": r, "client_cpu_s": c, "duration_s": 4.0, "seconds": None}
            for r, c in ((1, 2.0), (2, 3.0), (3, 1.0))]
    rows += [{"tool": "bench_serve", "round": 1, "client_cpu_s": 6.0, "duration_s": 5.0, "seconds": 10.0},
             {"tool": "bench_serve", "round": 2, "client_cpu_s": 9.0, "duration_s": 5.0, "seconds": 10.0,
              "status": "failed"},
             {"tool": "slmstudy", "round": 1, "client_cpu_s": 0.1, "duration_s": 1.0, "seconds": None, "level": 1.0}]
    df = pd.DataFrame(rows).assign(model="m")
    df["status"] = df["status"].fillna("ok") if "status" in df else "ok"
    df["level"] = df["level"].fillna(8.0)
    out = tool_cpu(df).set_index(["level", "tool"])["client_cores"]
    assert out.to_dict() == {(1.0, "slmstudy"): 0.1, (8.0, "bench_serve"): 0.6, (8.0, "slmstudy"): 0.5}
    assert tool_cpu_sentence(tool_cpu(df)).endswith(": at 8 users ours 0.50, vllm bench serve 0.60 (m).")
    assert tool_cpu(df.drop(columns="client_cpu_s")).empty and tool_cpu_sentence(pd.DataFrame()) == ""


def test_which_tool_the_server_ran_faster_beside_by_hand():
    """Rounds paired by model, level and round: at 1 user ours 100 vs 105 (slower) and 110
    vs 100 (faster): 1 of 2; at 32 users 900 vs 800 and 950 vs 900: 2 of 2. A round whose
    other side failed is no pair; GuideLLM's rows are not vllm bench serve's."""
    from slmstudy.experiments.serving import paired_pace, paired_pace_sentence

    def row(tool, level, rnd, tok_s, status="ok"):
        return {"model": "m", "tool": tool, "level": level, "round": rnd, "output_tok_s": tok_s, "status": status}

    df = pd.DataFrame([row("slmstudy", 1.0, 1, 100.0), row("bench_serve", 1.0, 1, 105.0),
                       row("slmstudy", 1.0, 2, 110.0), row("bench_serve", 1.0, 2, 100.0),
                       row("slmstudy", 32.0, 1, 900.0), row("bench_serve", 32.0, 1, 800.0),
                       row("slmstudy", 32.0, 2, 950.0), row("bench_serve", 32.0, 2, 900.0),
                       row("slmstudy", 32.0, 3, 10.0), row("bench_serve", 32.0, 3, 999.0, "failed"),
                       row("guidellm", 32.0, 3, 5.0)])
    pace = paired_pace(df)
    assert pace.set_index("level")[["faster", "rounds"]].to_dict("index") == {
        1.0: {"faster": 1, "rounds": 2}, 32.0: {"faster": 2, "rounds": 2}}
    assert paired_pace_sentence(pace).endswith("beside the same server: m: 1 user 1 of 2, 32 users 2 of 2.")
    assert paired_pace(df, "guidellm").to_dict("records") == [{"model": "m", "level": 32.0, "rounds": 1, "faster": 1}]
    assert paired_pace_sentence(paired_pace(df[df["tool"] == "slmstudy"])) == ""


def test_crosscheck_conditions_count_pairs_by_hand():
    """Three pairs of one model: our engine process 120, 130, 150% CPU against bench's 110,
    135, 125 (more in 2 of 3, medians 130 vs 125); the GPU busy 90, 70, 60% against 88, 85,
    80 (less in 2 of 3, medians 70 vs 85). The pooled row ('all') is no pair; a pair
    without GPU telemetry (the CPU host) drops out of the GPU's count only."""
    from slmstudy.experiments.batch_scaling import crosscheck_conditions, crosscheck_conditions_sentence

    df = pd.DataFrame({"model": "m", "round": ["1", "2", "3", "all", "4"],
                       "slmstudy_during_proc_cpu_pct_mean": [120.0, 130.0, 150.0, 0.0, 100.0],
                       "bench_during_proc_cpu_pct_mean": [110.0, 135.0, 125.0, 999.0, 90.0],
                       "slmstudy_during_util_gpu_pct_mean": [90.0, 70.0, 60.0, 0.0, np.nan],
                       "bench_during_util_gpu_pct_mean": [88.0, 85.0, 80.0, 999.0, np.nan]})
    (c,) = crosscheck_conditions(df[df["round"] != "4"]).to_dict("records")
    assert (c["proc_cpu_pct_pairs_ours_more"], c["proc_cpu_pct_pairs"]) == (2, 3)
    assert (c["proc_cpu_pct_ours_median"], c["proc_cpu_pct_bench_median"]) == (130.0, 125.0)
    assert (c["util_gpu_pct_pairs_ours_less"], c["util_gpu_pct_pairs"]) == (2, 3)
    assert (c["util_gpu_pct_ours_median"], c["util_gpu_pct_bench_median"]) == (70.0, 85.0)
    assert crosscheck_conditions_sentence(crosscheck_conditions(df[df["round"] != "4"])) == (
        "While each pair measured, against vllm bench latency: m: ours took more CPU in its engine process in "
        "2 of 3 pairs (medians 130% vs 125%) and kept the GPU busy less of the time in 2 of 3 (medians 70% vs 85%).")
    (c4,) = crosscheck_conditions(df).to_dict("records")
    assert (c4["proc_cpu_pct_pairs_ours_more"], c4["proc_cpu_pct_pairs"], c4["util_gpu_pct_pairs"]) == (3, 4, 3)
    cpu_only = df.drop(columns=["slmstudy_during_util_gpu_pct_mean", "bench_during_util_gpu_pct_mean"])
    assert "GPU" not in crosscheck_conditions_sentence(crosscheck_conditions(cpu_only))
    assert crosscheck_conditions_sentence(crosscheck_conditions(df[["model", "round"]])) == ""


def test_sent_failures_count_every_request_a_level_sent():
    """A level of 4 sent requests (one failed in its drain, one with no 'ok' recorded, which
    counts as failed) and another of 2 that all succeeded: 4 sent, 2 failed; 2 sent, 0."""
    from slmstudy.experiments.serving import sent_failures

    req = pd.DataFrame({"model": "m", "mode": "rate", "level": [128.0] * 4 + [64.0] * 2,
                        "ok": [True, False, None, True, True, True],
                        "window_phase": ["steady", "drain", "drain", "warmup", "steady", "steady"]})
    got = sent_failures(req).set_index("level")[["sent", "failed"]].to_dict("index")
    assert got == {64.0: {"sent": 2, "failed": 0}, 128.0: {"sent": 4, "failed": 2}}
    assert sent_failures(req.drop(columns="ok")).empty and sent_failures(pd.DataFrame()).empty


def test_bootstrap_percentile_ci_by_hand():
    from slmstudy.stats import bootstrap_percentile_ci

    # every request the same: the interval is that value
    assert bootstrap_percentile_ci([[0.1]] * 10, 50) == (0.1, 0.1)
    # two values: every resample's median lies between them, and both extremes occur
    lo, hi = bootstrap_percentile_ci([[1.0], [3.0]], 50, resamples=2000)
    assert (lo, hi) == (1.0, 3.0)
    # groups are resampled whole: a request of 99 gaps of 1 ms and one of a single 1 s
    # gap; the pooled p50 is 1 ms unless a resample holds the slow request only
    lo, hi = bootstrap_percentile_ci([[0.001] * 99, [1.0]], 50, resamples=400)
    assert lo == 0.001 and hi == 1.0  # both requests drawn twice: a quarter of resamples each
    assert bootstrap_percentile_ci([[0.2]], 50) != bootstrap_percentile_ci([[0.2]], 50)  # NaN: one group
    # a known distribution: the CI of the median of 400 uniform(0, 1) draws holds 0.5
    x = np.random.default_rng(1).uniform(0, 1, 400)
    lo, hi = bootstrap_percentile_ci([[v] for v in x], 50)
    assert lo < 0.5 < hi and hi - lo < 0.15


# ---------------------------------------------------------------- front-end A/B
def _frontend_rows():
    """Worked by hand, model m (tok/s of LLM.generate, streamed, final only per pair):
    batch 1: (100, 90, 95), (200, 190, 200), (50, 46, 49)
      streamed vs LLM -10, -5, -8%: mean -7.667, s 2.5166, t(0.975, 2) 4.30265 -> half 6.25161
      final vs LLM     -5,  0, -2%: mean -2.333, the same s -> [-8.5849, +3.9183]
    batch 8: (100, 80, 99), (100, 81, 100), (100, 79, 101), and pair 3 without its final run
      streamed -20, -19, -21%: mean -20, s 1 -> half 2.4842: [-22.48, -17.52]
      final -1, 0, +1%: [-2.48, +2.48]
      CPU time / wall: streamed 1.8 / 2.0, final 1.2 / 1.6, LLM 0.8 / 1.6 -> 90, 75, 50%"""
    rows = []
    for batch, pairs in ((1, [(100, 90, 95), (200, 190, 200), (50, 46, 49)]),
                         (8, [(100, 80, 99), (100, 81, 100), (100, 79, 101)])):
        for pair, (llm, stream, final) in enumerate(pairs):
            for mode, tok, wall, cpu in (("llm", llm, 1.6, 0.8), ("stream", stream, 2.0, 1.8),
                                         ("final", final, 1.6, 1.2)):
                rows.append({"model": "m", "batch": batch, "pair": pair, "mode": mode, "output_tok_s": float(tok),
                             "wall_s": wall, "main_cpu_s": cpu, "short_outputs": 0})
    rows += [{"model": "m", "batch": 8, "pair": 3, "mode": m, "output_tok_s": 10.0, "wall_s": 1.0,
              "main_cpu_s": 0.1, "short_outputs": 1} for m in ("llm", "stream")]
    return pd.DataFrame(rows)


def test_frontend_ab_differences_from_llm_generate_by_hand():
    from slmstudy.experiments import frontend_cost

    df = frontend_cost.rows(_frontend_rows(), target_pct=3.0)
    one, eight = df.iloc[0], df.iloc[1]
    assert (one["batch"], eight["batch"]) == (1, 8)
    assert one["stream_vs_llm_pct"] == pytest.approx(-23 / 3)
    assert one["stream_vs_llm_ci_lo"] == pytest.approx(-13.918, abs=1e-3)
    assert one["stream_vs_llm_ci_hi"] == pytest.approx(-1.415, abs=1e-3)
    assert one["stream_vs_llm_verdict"] == "not settled at ±3% by 3 pairs"
    assert one["final_vs_llm_ci95"] == "[-8.58, +3.92]"
    assert one["llm_tok_s"] == pytest.approx(350 / 3) and one["stream_tok_s"] == pytest.approx(326 / 3)
    # pair 3 of batch 8 lacks its final-only run: left out, its short outputs still counted
    assert eight["pairs"] == 3 and eight["short_outputs"] == 2
    assert eight["stream_vs_llm_pct"] == pytest.approx(-20.0)
    assert eight["stream_vs_llm_ci95"] == "[-22.48, -17.52]"
    assert eight["stream_vs_llm_verdict"] == "slower by more than 3%"
    assert eight["final_vs_llm_pct"] == pytest.approx(0.0, abs=1e-12)
    assert eight["final_vs_llm_verdict"] == "within ±3%"
    assert (eight["main_busy_stream_pct"], eight["main_busy_final_pct"], eight["main_busy_llm_pct"]) == \
        pytest.approx((90.0, 75.0, 50.0))
    # faster by more than the target: the same runs read the other way round
    flipped = _frontend_rows().replace({"mode": {"llm": "stream", "stream": "llm"}})
    assert frontend_cost.rows(flipped, 3.0).iloc[1]["stream_vs_llm_verdict"] == "faster by more than 3%"


def test_frontend_sentence_names_every_batch_and_the_largest_gap():
    from slmstudy.experiments import frontend_cost

    text = frontend_cost.sentence(frontend_cost.rows(_frontend_rows(), target_pct=3.0))
    assert text.startswith("Inside one process (3 pairs, each mode once per pair in rotating order)")
    assert ("m: our streamed path -7.7/-20.0% and AsyncLLM with final outputs only -2.3/+0.0% at batch 1/8; "
            "the largest gap at batch 8, -20.00% [-22.48, -17.52] (slower by more than 3%), this process's CPU "
            "90% of the run streamed, 75% final only and 50% in LLM.generate; LLM.generate's own runs at batch 8 "
            "spanned 100 to 100 tok/s.") in text
    # the spread of LLM.generate's runs: batch 1's were 100, 200 and 50 tok/s
    df = frontend_cost.rows(_frontend_rows(), target_pct=3.0)
    assert (df.iloc[0]["llm_min_tok_s"], df.iloc[0]["llm_max_tok_s"]) == (50.0, 200.0)
    assert frontend_cost.sentence(pd.DataFrame([{"note": "not measured: why"}])) == "not measured: why"


def test_frontend_orders_rotate_every_mode_through_every_position():
    from slmstudy.engine import frontend_ab

    six = [frontend_ab.order(p) for p in range(6)]
    assert six[0] == ("stream", "final", "llm") and frontend_ab.order(6) == six[0]
    for position in range(3):
        assert sorted(o[position] for o in six) == ["final", "final", "llm", "llm", "stream", "stream"]
    # every mode ran before every other in half of the pairs
    for a in ("stream", "final", "llm"):
        for b in ("stream", "final", "llm"):
            if a != b:
                assert sum(o.index(a) < o.index(b) for o in six) == 3
