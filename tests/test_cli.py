"""The command line: bad input stops before anything starts, with the file and key named."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from slmstudy import paths

ROOT = paths.project_root()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slmstudy", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_list_shows_every_notebook_with_profiles():
    out = _cli("list").stdout
    for nb in ("00_report", "01_model_vs_model", "02_precision", "03_batch_scaling"):
        assert nb in out
    assert "cpu, gpu" in out


def test_check_accepts_the_shipped_profiles():
    for profile in ("cpu", "gpu"):
        r = _cli("check", "--profile", profile, "01_model_vs_model", "03_batch_scaling")
        # the gpu profile's fp8/int8 checks only apply to 02; these two validate anywhere
        assert r.returncode == 0, r.stderr


def test_shipped_layers_validate_over_their_profile():
    # params/NOTEBOOK/*.yaml other than cpu.yaml and gpu.yaml are -f layers, named
    # *_gpu or *_cpu after the profile they refine; list shows them apart from profiles.
    listed = _cli("list").stdout
    layers = [f for f in sorted((ROOT / "params").glob("*/*.yaml")) if f.stem not in ("cpu", "gpu")]
    assert layers
    for f in layers:
        rel = str(f.relative_to(ROOT))
        assert rel in listed.split("-f: ", 1)[-1]
        profile = "gpu" if f.stem.endswith("_gpu") else "cpu"
        r = _cli("check", "--profile", profile, "-f", rel, f.parent.name)
        assert r.returncode == 0, r.stderr


def test_bad_file_fails_fast_naming_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("workload:\n  batch_sizes: [1, -2]\n  colour: red\nmodels: [gpt-5]\n")
    runs = tmp_path / "runs"
    t0 = time.monotonic()
    r = _cli("run", "03_batch_scaling", "--profile", "cpu", "-f", str(bad), env={"SLMSTUDY_RUNS_DIR": str(runs)})
    assert r.returncode == 2
    assert time.monotonic() - t0 < 60  # no engine was started
    err = r.stderr
    assert "bad.yaml: key 'workload.batch_sizes[1]'" in err
    assert "bad.yaml: unknown key 'workload.colour'" in err
    assert "unknown model 'gpt-5'" in err
    assert not runs.exists()  # nothing was created, let alone started


def test_unknown_notebook_lists_available():
    r = _cli("run", "99_nothing")
    assert r.returncode == 2 and "03_batch_scaling" in r.stderr


def test_measured_on_a_file_that_is_no_environment_record_is_one_line(tmp_path):
    bad = tmp_path / "env.json"
    bad.write_text('{"engine_kind": "cuda", "vllm_dist": "vllm"}')
    r = _cli("run", "03_batch_scaling", "--profile", "gpu", "--measured-on", str(bad),
             env={"SLMSTUDY_RUNS_DIR": str(tmp_path / "runs")})
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {bad}: not an environment record of a measuring machine (missing vllm)"
    assert not (tmp_path / "runs").exists()  # refused before anything was planned or written
