"""Comparing two runs: the interval of the difference computed by hand, the verdict
rules, "not comparable" naming what differs, and the refusals of things that are
not two complete runs of one notebook."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from slmstudy import paths
from slmstudy.experiments import compare, compare_host

CPU = paths.reference_dir() / "cpu" / "03_batch_scaling"


def test_difference_interval_by_hand():
    # means 11 and 21, both sample variances 2.5 with n = 5: se = sqrt(0.5 + 0.5) = 1;
    # Welch's degrees of freedom = 1 / (0.25/4 + 0.25/4) = 8; t(0.975, 8) = 2.306
    d, lo, hi = compare.diff_ci(np.array([10, 12, 11, 13, 9.0]), np.array([20, 22, 21, 23, 19.0]))
    assert d == 10 and lo == pytest.approx(10 - 2.306, abs=1e-3) and hi == pytest.approx(10 + 2.306, abs=1e-3)
    # a measured run-to-run spread of 1 (SD of one process's mean) adds 2 * 1^2 to the variance
    _, lo2, hi2 = compare.diff_ci(np.array([10, 12, 11, 13, 9.0]), np.array([20, 22, 21, 23, 19.0]), extra_sd=1.0)
    assert hi2 - lo2 > hi - lo


@pytest.mark.parametrize("d,lo,hi,sense,expected", [
    (1.0, -0.5, 2.5, "higher", "same"),
    (3.0, 1.0, 5.0, "higher", "faster"),   # more tokens/s
    (3.0, 1.0, 5.0, "lower", "slower"),    # more seconds per token
    (-3.0, -5.0, -1.0, "lower", "faster"),
    (-3.0, -5.0, -1.0, "neutral", "lower"),
])
def test_verdict_rules(d, lo, hi, sense, expected):
    assert compare.verdict(d, lo, hi, sense, (5, 5)) == expected


def _run_folder(root, name, tok_s, device="NVIDIA H100 80GB HBM3", input_len=128, status="ok", commit=None):
    folder = root / name
    (folder / "tables").mkdir(parents=True)
    params = {"models": ["tiny-qwen2"], "precision": "bf16",
              "workload": {"input_len": input_len, "output_len": 256, "batch_sizes": [1], "repetitions": 5}}
    (folder / "params.yaml").write_text(yaml.safe_dump({"notebook": "03_batch_scaling", "profile": "gpu",
                                                        "sources": [], "params": params}))
    (folder / "environment.json").write_text(json.dumps({"gpu_name": device, "git_commit": commit}))
    runs = pd.DataFrame({"model": "tiny-qwen2", "precision": "bf16", "point": "b1", "batch": 1, "config": "c",
                         "output_tok_s": tok_s})
    runs.to_parquet(folder / "tables" / "runs.parquet")
    pd.DataFrame([{"config": "c", "model": "tiny-qwen2", "precision": "bf16", "status": status, "start": "any",
                   "root_cause": None if status == "ok" else "ValueError: boom"}]).to_parquet(
        folder / "tables" / "configs.parquet")
    return folder


def test_same_faster_and_not_comparable(tmp_path):
    base = [400.0, 402, 398, 401, 399]
    a = _run_folder(tmp_path, "a", base)
    same = compare.compare_folders(a, _run_folder(tmp_path, "b", [401.0, 399, 400, 402, 398]))
    assert same.comparable and set(same.rows["verdict"]) == {"same"}
    faster = compare.compare_folders(a, _run_folder(tmp_path, "c", [480.0, 482, 478, 481, 479]))
    row = faster.rows.set_index("metric").loc["output_tok_s"]
    assert row["verdict"] == "faster" and row["ratio_b_over_a"] == pytest.approx(1.2)
    other_gpu = compare.compare_folders(a, _run_folder(tmp_path, "d", base, device="NVIDIA H200"))
    assert not other_gpu.comparable
    assert other_gpu.rows["verdict"].str.startswith("not comparable: hardware (NVIDIA H100 80GB HBM3 vs NVIDIA H200)").all()
    other_len = compare.compare_folders(a, _run_folder(tmp_path, "e", base, input_len=64))
    assert other_len.differing == ["workload.input_len (128 vs 64)"]
    assert compare.sentence(other_len).startswith("Not comparable")
    # the front-end A/B runs engines of its own: a run that adds it measured the same points
    ab = _run_folder(tmp_path, "f", [401.0, 399, 400, 402, 398])
    pf = yaml.safe_load((ab / "params.yaml").read_text())
    pf["params"]["frontend_check"] = {"batch_sizes": [1], "pairs": 12, "memory_share": 0.4}
    (ab / "params.yaml").write_text(yaml.safe_dump(pf))
    with_ab = compare.compare_folders(a, ab)
    assert with_ab.comparable and with_ab.differing == [] and set(with_ab.rows["verdict"]) == {"same"}


def test_comparison_names_the_commits_that_measured_each_side(tmp_path):
    # a folder's path names it as it is now; the commits say what it held when compared
    a = _run_folder(tmp_path, "a", [400.0, 402, 398], commit="40d5e04" + "0" * 33)
    b = _run_folder(tmp_path, "b", [401.0, 399, 400])
    c = compare.compare_folders(a, b)
    compare.write(c, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "comparison.json").read_text())["commits"] == ["40d5e0400000", "unknown"]


def test_refusals_are_one_line_each(tmp_path):
    a = _run_folder(tmp_path, "a", [400.0, 401])
    bad = _run_folder(tmp_path, "bad", [400.0, 401], status="failed")
    other = tmp_path / "other"
    shutil.copytree(a, other)
    (other / "params.yaml").write_text((other / "params.yaml").read_text().replace("03_batch_scaling", "02_precision"))

    def cli(x, y):
        return subprocess.run([sys.executable, "-m", "slmstudy", "compare", str(x), str(y)], capture_output=True,
                              text=True, timeout=120)

    for x, y, message in ((tmp_path, a, "is not a run folder"),
                          (a, bad, "is an incomplete run: missing or failed c (ValueError: boom)"),
                          (a, other, "is a run of 03_batch_scaling and")):
        r = cli(x, y)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert message in r.stderr and "Traceback" not in r.stderr


def test_the_committed_cpu_reference_reproduces_itself():
    c = compare.compare_folders(CPU, CPU)
    assert c.comparable and (c.rows["verdict"] == "same").all() and len(c.rows) > 10


def test_parameters_added_later_compare_as_their_default_and_the_anatomy_shapes_no_point():
    # 59f487e's 03 reference predates tensor_parallel_size and the step anatomy
    old = {"engine.max_model_len": 4096}
    new = {"engine.max_model_len": 4096, "engine.tensor_parallel_size": 1, "anatomy.steps": 32,
           "anatomy.batch_sizes": [1, 16, 64, 256]}
    assert compare.differing_params(old, new) == []
    assert compare.differing_params(old, {**new, "engine.tensor_parallel_size": 2}) == [
        "engine.tensor_parallel_size (1 vs 2)"]
    assert compare.differing_params(old, {"engine.max_model_len": 8192}) == ["engine.max_model_len (4096 vs 8192)"]
    # 04's cross-check before per_user existed sent `requests` at every level, as per_user 0 does
    assert compare.differing_params({"bench_serve.requests": 6}, {"bench_serve.requests": 6,
                                                                   "bench_serve.per_user": 0}) == []
    assert compare.differing_params({"bench_serve.requests": 6}, {"bench_serve.requests": 6,
                                                                   "bench_serve.per_user": 10}) == [
        "bench_serve.per_user (0 vs 10)"]


def _host_runs(tok_s, util, cpu):
    return pd.DataFrame({"model": "m", "precision": "bf16", "point": "b1", "output_tok_s": tok_s,
                         "util_gpu_pct_mean": util, "proc_cpu_pct_mean": cpu})


def test_host_diagnosis_by_hand():
    """2026-12-06's Llama at half speed: the GPU busy 47% against 94% while the engine
    process used as much CPU (115%) is the host's doing; a GPU as busy is not."""
    a = _host_runs([630.0, 628, 632], [94.0, 93, 95], [114.0, 115, 116])
    slow_host = _host_runs([320.0, 318, 322], [47.0, 46, 48], [115.0, 116, 117])
    rows = pd.DataFrame(compare._rows(a, slow_host, ["model", "precision", "point"], {"output_tok_s": "higher"},
                                      True, "", None))
    out = compare_host.host_diagnosis(a, slow_host, rows)
    r = out.iloc[0]
    assert r["verdict"] == "slower" and r["host"] == "B waited on its host"
    assert (r["util_gpu_a"], r["util_gpu_b"], r["proc_cpu_a"], r["proc_cpu_b"]) == (94.0, 47.0, 115.0, 116.0)
    assert compare_host.host_note(out) == compare_host.HOST_NOTE + (
        "m bf16: 1 of 1 differing throughput rows, B slower with the GPU busy 47% of the time against 94% at "
        "116% vs 115% engine-process CPU")
    # the same slowdown with the GPU as busy (a slower GPU or other kernels): not the host
    slow_gpu = _host_runs([320.0, 318, 322], [93.0, 94, 95], [115.0, 116, 117])
    out = compare_host.host_diagnosis(a, slow_gpu, pd.DataFrame(compare._rows(
        a, slow_gpu, ["model", "precision", "point"], {"output_tok_s": "higher"}, True, "", None)))
    assert out.iloc[0]["host"] == "" and compare_host.host_note(out) is None
    # the GPU idle while the engine process itself had half the CPU (a starved process): not this rule
    starved = _host_runs([320.0, 318, 322], [47.0, 46, 48], [60.0, 61, 59])
    out = compare_host.host_diagnosis(a, starved, pd.DataFrame(compare._rows(
        a, starved, ["model", "precision", "point"], {"output_tok_s": "higher"}, True, "", None)))
    assert out.iloc[0]["host"] == ""
    # B faster because A's host was slow: A is named
    out = compare_host.host_diagnosis(slow_host, a, pd.DataFrame(compare._rows(
        slow_host, a, ["model", "precision", "point"], {"output_tok_s": "higher"}, True, "", None)))
    assert out.iloc[0]["verdict"] == "faster" and out.iloc[0]["host"] == "A waited on its host"


def test_two_studies_compare_notebook_by_notebook(tmp_path):
    """A study against a re-run: each notebook both ran compared as two runs, a notebook
    only one side ran named as not compared (and the CLI then exits non-zero), the files
    per notebook."""
    from slmstudy.experiments import compare_study

    a, b = tmp_path / "ref", tmp_path / "rerun"
    _run_folder(a, "03_batch_scaling", [400.0, 401, 399, 402, 398])
    _run_folder(b, "03_batch_scaling", [480.0, 482, 478, 481, 479])
    shutil.copytree(paths.reference_dir() / "cpu" / "01_model_vs_model", b / "01_model_vs_model")
    s = compare_study.comparisons(str(a), str(b))
    assert [c.notebook for c in s.comparisons] == ["03_batch_scaling"] and not s.single
    assert s.refused == {"01_model_vs_model": "only B has a run of it"}
    assert compare.sentence(s.comparisons[0]) == "0 of 1 rows are the same within the measured spread; 1 faster."
    assert list(s.summary()["notebook"]) == ["03_batch_scaling", "01_model_vs_model"]
    assert "**01_model_vs_model**: not compared: only B has a run of it" in s.verdicts()
    compare_study.write_all(s, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "03_batch_scaling" / "comparison.json").read_text())["counts"]["faster"] == 1
    r = subprocess.run([sys.executable, "-m", "slmstudy", "compare", str(a), str(b)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and "compare 03_batch_scaling" in r.stdout
    assert r.stderr.strip() == "error: 01_model_vs_model not compared: only B has a run of it"
    # a run folder beside a study is compared as two runs: the study is refused as a run
    with pytest.raises(compare.CompareError, match="is not a run folder"):
        compare_study.comparisons(str(a), str(b / "03_batch_scaling"))
    # two studies with no notebook in common
    with pytest.raises(compare.CompareError, match="share no notebook's run"):
        compare_study.comparisons(str(a), str(b / "01_model_vs_model" / "tables"))


def test_the_committed_cpu_study_reproduces_itself_notebook_by_notebook():
    from slmstudy.experiments import compare_study

    s = compare_study.comparisons(str(paths.reference_dir() / "cpu"), str(paths.reference_dir() / "cpu"))
    assert [c.notebook for c in s.comparisons] == list(compare.COMPARABLE) and not s.refused
    assert all((c.rows["verdict"] == "same").all() for c in s.comparisons)


def test_a_second_gpu_is_not_comparable_and_its_throughput_rows_carry_the_roofline_prediction(tmp_path):
    # The H100 03 reference against a copy of itself whose probe measured 1.5x the bandwidth
    # and 1.5x every matmul peak, on a GPU of another name: each step's bound (the larger of
    # bytes / bandwidth and FLOPs / peak) and the prefill's shrink by 1.5, so the roofline model
    # predicts B/A = 1.5 at every batch size; the measured ratio is 1 (the same rows), so the
    # prediction's error is 1 / 1.5 - 1 = -33.3%.
    src = paths.reference_dir() / "h100" / "03_batch_scaling"
    b = tmp_path / "h200_03"
    shutil.copytree(src, b)
    hw_path = b / "configs" / "hardware" / "hardware.json"
    hw = json.loads(hw_path.read_text())
    hw["bandwidth_tbs"] *= 1.5
    hw["tflops"] = {k: v * 1.5 for k, v in hw["tflops"].items()}
    hw["device"] = "NVIDIA H200"
    hw_path.write_text(json.dumps(hw))
    env = json.loads((b / "environment.json").read_text())
    (b / "environment.json").write_text(json.dumps({**env, "gpu_name": "NVIDIA H200"}))
    c = compare.compare_folders(src, b)
    assert not c.comparable and c.hardware == ("NVIDIA H100 80GB HBM3", "NVIDIA H200")
    assert c.rows["verdict"].str.startswith("not comparable: hardware (NVIDIA H100 80GB HBM3 vs NVIDIA H200)").all()
    tp = c.rows[(c.rows["metric"] == "output_tok_s") & c.rows["point"].str.match(r"b\d+$")]
    assert len(tp) == 18  # two models, batch 1-256
    assert np.allclose(tp["predicted_ratio"], 1.5) and np.allclose(tp["ratio_b_over_a"], 1.0)
    assert np.allclose(tp["prediction_error_pct"], 100 * (1 / 1.5 - 1))
    # rows that are not throughput at a batch size carry no prediction
    assert c.rows[c.rows["metric"] != "output_tok_s"]["predicted_ratio"].isna().all()
