"""Faults a long study meets, each as a test (docs/reliability.md lists them):
a killed or interrupted CLI, an engine core killed, truncated and deleted results,
a full or unwritable disk, two runs at once, a port taken, a failing cell."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from slmstudy.engine import procs
from slmstudy.experiments import common
from slmstudy.measure import executor
from slmstudy.platform import detect
from slmstudy.results import pool as pool_mod
from slmstudy.results.pool import Pool

ENGINE = pytest.mark.skipif(detect().engine_kind != "cpu", reason="tiny-model checks for the CPU engine")
SMALL = ("models: [tiny-qwen2]\nbench_latency: {enabled: false}\nanatomy: null\nfrontend_check: null\n"
         "workload: {input_len: 16, output_len: 8, batch_sizes: [2], repetitions: 2, warmup: 1}\n")


def _cli(project: Path, *args: str, wait: bool = True, **kw):
    env = {**os.environ, "SLMSTUDY_ROOT": str(project), "SLMSTUDY_RUNS_DIR": str(project / "outputs" / "runs"),
           **kw.pop("env", {})}
    cmd = [sys.executable, "-m", "slmstudy", *args]
    if wait:
        return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    return subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _small(project: Path) -> str:
    path = project / "params" / "03_batch_scaling" / "small_cpu.yaml"
    path.write_text(SMALL)
    return str(path)


@pytest.fixture
def notebook_project(project):
    """The temporary project with the real notebooks (the CLI executes them)."""
    from slmstudy import paths

    real = paths.PACKAGE_DIR.parents[1] / "notebooks"
    for nb in real.glob("*.ipynb"):
        (project / "notebooks" / nb.name).write_bytes(nb.read_bytes())
    return project


def _wait_for(predicate, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("condition not met")


def _running(project: Path) -> dict:
    """The running engine job's process group, once it has started."""
    def found():
        for path in (project / "outputs" / "runs" / "pool").glob("*/running.json"):
            try:
                return json.loads(path.read_text())
            except ValueError:
                return None
        return None
    return _wait_for(found, 120)


def _gone(pgid: int, timeout: float = 20.0) -> bool:
    try:
        _wait_for(lambda: not procs.group_members(pgid), timeout)
        return True
    except TimeoutError:
        return False


# ------------------------------------------------------------- killed CLI
@pytest.mark.engine
@ENGINE
@pytest.mark.timeout(900)
def test_kill_9_of_the_cli_leaves_no_engine_and_the_rerun_completes(notebook_project):
    layer = _small(notebook_project)
    cli = _cli(notebook_project, "run", "03_batch_scaling", "--profile", "cpu", "-f", layer, wait=False)
    running = _running(notebook_project)
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    assert _gone(running["pgid"]), "the engine outlived the killed CLI"
    again = _cli(notebook_project, "run", "03_batch_scaling", "--profile", "cpu", "-f", layer)
    assert again.returncode == 0, again.stdout[-3000:]
    runs = next((notebook_project / "outputs" / "runs" / "03_batch_scaling").glob("cpu-*/tables/runs.csv"))
    assert len(runs.read_text().strip().splitlines()) == 1 + 2  # header + 2 repetitions: nothing doubled

    # The same pool analysed "elsewhere" (--measured-on: how a lent GPU's pool is
    # analysed on another machine): as the machine that measured, nothing measured.
    entry = next((notebook_project / "outputs" / "runs" / "pool").glob("tiny-qwen2__*/environment.json"))
    there = _cli(notebook_project, "run", "03_batch_scaling", "--profile", "cpu", "-f", layer,
                 "--measured-on", str(entry))
    assert there.returncode == 0, there.stdout[-3000:] + there.stderr[-2000:]
    assert "0 measured, " in there.stdout and "measuring nothing" in there.stdout
    # The platform really comes from the file: a record of a machine with other
    # cores plans another hardware probe, which this pool lacks, and nothing starts.
    other = json.loads(entry.read_text())
    other["cpu_count_logical"] = int(other["cpu_count_logical"]) + 14
    (notebook_project / "other_env.json").write_text(json.dumps(other))
    refused = _cli(notebook_project, "run", "03_batch_scaling", "--profile", "cpu", "-f", layer,
                   "--measured-on", str(notebook_project / "other_env.json"))
    assert refused.returncode != 0
    assert "job(s) of the plan not in the pool" in refused.stderr and "hardware" in refused.stderr
    assert "tiny-qwen2__" not in refused.stderr.split("not in the pool")[1]  # the engine job was found


@pytest.mark.engine
@ENGINE
@pytest.mark.timeout(600)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_the_engine_and_print_a_summary(notebook_project, signum):
    cli = _cli(notebook_project, "run", "03_batch_scaling", "--profile", "cpu", "-f", _small(notebook_project),
               wait=False)
    running = _running(notebook_project)
    os.kill(cli.pid, signum)
    out, _ = cli.communicate(timeout=60)
    assert cli.returncode == 128 + signum
    assert f"interrupted by signal {int(signum)}" in out and "Summary" in out and "Traceback" not in out
    assert _gone(running["pgid"], 5.0), "an engine outlived the interrupted run"


def test_a_run_refuses_while_an_older_runs_processes_live(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    entry = pool_mod.Entry(tmp_path / "job-0123456789")
    try:
        entry.dir.mkdir()
        (entry.dir / "running.json").write_text(json.dumps({"pgid": sleeper.pid}))
        with pytest.raises(pool_mod.PoolBusy, match=rf"still alive \(pids {sleeper.pid}, process group"):
            with Pool(tmp_path, leftover_wait_s=1.0).running(entry):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with Pool(tmp_path, leftover_wait_s=1.0).running(entry):  # its owner gone, the run goes ahead
        assert not (entry.dir / "running.json").exists()


# ------------------------------------------------------------ engine core
@pytest.mark.engine
@ENGINE
@pytest.mark.timeout(600)
def test_killed_engine_core_is_a_failure_with_its_cause(project):
    from slmstudy.experiments.registry import open_study
    from slmstudy.results import environment

    study = open_study("03_batch_scaling", profile="cpu", overrides={
        "models": ["tiny-qwen2"], "bench_latency": {"enabled": False}, "anatomy": None,
        "workload": {"input_len": 16, "output_len": 64, "batch_sizes": [1], "repetitions": 50, "warmup": 1}})
    job = next(j for j in study.jobs() if j.kind == "engine")
    result = {}
    thread = threading.Thread(target=lambda: result.update(o=executor.execute([job], study.pool)))
    thread.start()

    def engine_core():
        running = (study.pool.entry(job).dir / "events.jsonl")
        if not running.exists() or '"type": "engine"' not in running.read_text():
            return None
        info = json.loads((study.pool.entry(job).dir / "running.json").read_text())
        return next((p for p in psutil.Process(info["pgid"]).children(recursive=True)
                     if "EngineCore" in " ".join(p.cmdline()) or "EngineCore" in p.name()), None)
    core = _wait_for(engine_core, 180)
    core.kill()
    thread.join(300)
    (outcome,) = result["o"]
    assert outcome.status == "failed"
    cause = outcome.root_cause or ""
    assert "See stack trace" not in cause and ("engine core" in cause.lower() or "signal" in cause), cause
    assert environment.identity_label(environment.identity()) == json.loads(
        (study.pool.entry(job).dir / "status.json").read_text())["identity_label"]


# ---------------------------------------------------------- broken results
def test_truncated_or_deleted_results_are_measured_again(tmp_path):
    pool = Pool(tmp_path / "pool")
    job = common.hardware_job()
    (first,) = executor.execute([job], pool)
    assert first.status == "ok"
    result = pool.entry(job).dir / "hardware.json"
    result.write_text(result.read_text()[:20])  # truncated
    found = pool.find(job, json.loads((pool.entry(job).dir / "status.json").read_text())["identity_label"])
    assert found.entry is None and "hardware.json has 20 bytes" in found.reasons[0]
    (again,) = executor.execute([job], pool)
    assert again.status == "ok" and any("incomplete" in r for r in again.reasons)
    result.unlink()  # deleted
    (third,) = executor.execute([job], pool)
    assert third.status == "ok" and any("hardware.json is missing" in r for r in third.reasons)
    assert json.loads(result.read_text())["bandwidth_tbs"] > 0


def test_disk_full_while_recording_leaves_nothing_counted_as_done(tmp_path, monkeypatch):
    pool = Pool(tmp_path / "pool")
    job = common.hardware_job()
    real = pool_mod.write_json

    def full(path, data):
        if Path(path).name == "status.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(pool_mod, "write_json", full)
    with pytest.raises(executor.NoSpace, match=r"No space left on device \(.*status\.json\)"):
        executor.execute([job], pool)
    assert not (pool.entry(job).dir / "status.json").exists()
    assert not list(pool.root.rglob("*.tmp"))  # no half-written file
    monkeypatch.setattr(pool_mod, "write_json", real)  # space is back: the folder resumes
    (outcome,) = executor.execute([job], pool)
    assert outcome.status == "ok"


def test_too_little_free_space_is_refused_before_anything_starts(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 5 << 20))
    with pytest.raises(executor.NoSpace, match=r"5 MB free, the plan's 1 jobs need about"):
        executor.execute([common.hardware_job()], Pool(tmp_path / "pool"))
    assert not (tmp_path / "pool" / "hardware").exists() and not list((tmp_path / "pool").glob("hardware-*"))


def test_unwritable_runs_folder_is_one_line(project):
    r = _cli(project, "run", "03_batch_scaling", "--profile", "cpu", env={"SLMSTUDY_RUNS_DIR": "/proc/slmstudy"})
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "/proc/slmstudy" in r.stderr and len(r.stderr.splitlines()) == 1


def test_files_get_the_umask_permissions(tmp_path):
    from slmstudy.atomic import UMASK, write_json

    path = write_json(tmp_path / "x.json", {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o666 & ~UMASK


# ---------------------------------------------------------- two runs at once
@pytest.mark.engine
@ENGINE
@pytest.mark.timeout(900)
def test_two_identical_runs_at_once_measure_once(notebook_project):
    layer = _small(notebook_project)
    a = _cli(notebook_project, "run", "03_batch_scaling", "--profile", "cpu", "-f", layer, wait=False)
    time.sleep(1)
    b = _cli(notebook_project, "run", "03_batch_scaling", "--profile", "cpu", "-f", layer, wait=False)
    out_a, _ = a.communicate(timeout=800)
    out_b, _ = b.communicate(timeout=800)
    entries = [d for d in (notebook_project / "outputs" / "runs" / "pool").glob("tiny-qwen2*") if d.is_dir()]
    assert len(entries) == 1
    configs = [r for r in (entries[0] / "events.jsonl").read_text().splitlines() if '"type": "config"' in r]
    assert len(configs) == 1  # one engine measured; the other run waited, then reused it
    assert "waiting for another run" in out_a + out_b
    ok = [p.returncode == 0 for p in (a, b)]
    (notebook_project / "two_runs.log").write_text(out_a + "\n=====\n" + out_b)
    assert any(ok), out_a[-2000:] + out_b[-2000:]
    if not all(ok):  # the later one may find the run folder still being written
        assert "is being written by another run" in out_a + out_b
    runs = next((notebook_project / "outputs" / "runs" / "03_batch_scaling").glob("cpu-*/tables/runs.csv"))
    assert len(runs.read_text().strip().splitlines()) == 1 + 2


# ------------------------------------------------------------ taken port
@pytest.mark.engine
@ENGINE
@pytest.mark.timeout(600)
def test_port_taken_before_the_server_binds_is_recorded_with_its_cause(project, monkeypatch):
    from slmstudy.experiments.registry import open_study
    from slmstudy.serving import server as server_mod

    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    monkeypatch.setattr(server_mod, "free_port", lambda host="127.0.0.1": holder.getsockname()[1])
    try:
        study = open_study("04_serving", profile="cpu", overrides={"models": ["tiny-qwen2"]})
        outcomes = study.run()
    finally:
        holder.close()
    assert list(outcomes["status"]) == ["failed"]
    cause = study.table("configs").iloc[0]["root_cause"]
    assert "address already in use" in cause.lower(), cause


# ------------------------------------------------------------ failing cell
@pytest.mark.engine
@pytest.mark.timeout(300)
def test_a_failing_cell_fails_the_notebook_with_its_error(notebook_project):
    bad = notebook_project / "params" / "05_compare" / "bad_cpu.yaml"
    bad.write_text("a: outputs/nothing-here\nb: outputs/nothing-here\n")
    r = _cli(notebook_project, "run", "05_compare", "--profile", "cpu", "-f", str(bad))
    assert r.returncode == 1
    assert "FAILED" in r.stdout and "CompareError: outputs/nothing-here is not a run folder" in r.stdout
    folder = next((notebook_project / "outputs" / "runs" / "05_compare").glob("cpu-*"))
    assert (folder / "05_compare.ipynb").exists() and (folder / "05_compare.html").exists()
    assert "FAILED" in (folder / "05_compare.html").read_text()
