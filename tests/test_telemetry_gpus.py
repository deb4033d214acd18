"""A tensor-parallel engine's sample from its GPUs' samples, by hand."""

from __future__ import annotations

import pytest

from slmstudy.telemetry import gpus


def test_two_gpus_read_as_one_engine():
    a = {"t": 10.0, "power_w": 300.0, "energy_mj": 1_000_000, "mem_used_mib": 40_000.0, "util_gpu_pct": 90,
         "gpm_sm_active_pct": 40.0, "sm_clock_mhz": 1980, "temp_c": 50, "clock_event_reasons": 0b0001,
         "proc_mem_mib": 39_000.0, "host_cpu_pct": 12.0}
    b = {"t": 10.001, "power_w": 200.0, "energy_mj": 500_000, "mem_used_mib": 30_000.0, "util_gpu_pct": 70,
         "gpm_sm_active_pct": 20.0, "sm_clock_mhz": 1780, "temp_c": 60, "clock_event_reasons": 0b0100,
         "proc_mem_mib": 29_000.0, "host_cpu_pct": 12.0}
    row = gpus.combine([a, b])
    # what adds up over the engine's GPUs: power 300 + 200, the energy counters, memory
    assert row["power_w"] == 500.0 and row["energy_mj"] == 1_500_000
    assert row["mem_used_mib"] == 70_000.0 and row["proc_mem_mib"] == 68_000.0
    # shares, clocks and temperature: their mean; the hottest kept apart; any GPU's throttle reason
    assert row["util_gpu_pct"] == 80 and row["gpm_sm_active_pct"] == 30.0 and row["sm_clock_mhz"] == 1880
    assert row["temp_c"] == 55 and row["temp_max_c"] == 60 and row["clock_event_reasons"] == 0b0101
    # each GPU's own columns beside them, the first GPU's clock and the host's columns once
    assert (row["gpu0_power_w"], row["gpu1_power_w"]) == (300.0, 200.0)
    assert (row["gpu0_gpm_sm_active_pct"], row["gpu1_gpm_sm_active_pct"]) == (40.0, 20.0)
    assert row["t"] == 10.0 and row["host_cpu_pct"] == 12.0 and row["gpus"] == 2


def test_a_reading_one_gpu_lacks_is_not_the_engines():
    # GPM is a rate between two samples: the first tick of one GPU has none yet
    row = gpus.combine([{"t": 1.0, "power_w": 100.0, "gpm_sm_active_pct": 10.0}, {"t": 1.0, "power_w": 80.0}])
    assert row["power_w"] == pytest.approx(180.0) and "gpm_sm_active_pct" not in row
    assert row["gpu0_gpm_sm_active_pct"] == 10.0 and "gpu1_gpm_sm_active_pct" not in row
    # one GPU: its sample unchanged
    assert gpus.combine([{"t": 1.0, "power_w": 100.0}]) == {"t": 1.0, "power_w": 100.0}
