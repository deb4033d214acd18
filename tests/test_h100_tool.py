"""tools/h100.sh's detached study, run here with a stand-in for the study command
(the script's own logic is what is tested: it outlives the call that started it,
``wait`` reports it running and then its exit code, its log is printed once and
its folders are packed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from slmstudy import paths

FAKE_STUDY = """#!/bin/bash
echo "study $*"
while [ ! -f "$GO" ]; do sleep 0.2; done
echo "study done"
exit 3
"""


def _h100(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One device call: when it returns, every process left in its group is killed,
    as the device tool does."""
    proc = subprocess.Popen(["bash", str(tmp / "tools" / "h100.sh"), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = proc.communicate(timeout=60)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_detached_study_outlives_its_call_and_wait_reports_it(tmp_path):
    (tmp_path / "tools").mkdir()
    shutil.copy(paths.project_root() / "tools" / "h100.sh", tmp_path / "tools" / "h100.sh")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text(FAKE_STUDY)
    (fake / "python3").chmod(0o755)
    go = tmp_path / "go"
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "OUT": str(tmp_path / "out"),
           "SLMSTUDY_DETACHED": str(tmp_path / "state"), "GO": str(go)}
    refused = _h100(tmp_path, env, "detach", "01_model_vs_model")
    assert refused.returncode != 0 and "SLMSTUDY_GIT_COMMIT" in refused.stderr
    env["SLMSTUDY_GIT_COMMIT"] = "0" * 40
    started = _h100(tmp_path, env, "detach", "01_model_vs_model")
    assert started.returncode == 0 and "study -m slmstudy run --profile gpu 01_model_vs_model" in started.stdout
    again = _h100(tmp_path, env, "detach", "02_precision")
    assert again.returncode == 2 and "running already" in again.stdout
    running = _h100(tmp_path, env, "wait", "1")
    # the call that started it has returned: the study is still there, its first line not repeated
    assert running.returncode == 75 and "still running" in running.stdout and "study -m" not in running.stdout
    go.touch()
    done = _h100(tmp_path, env, "wait", "30")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "study done" in done.stdout and "study -m" not in done.stdout
    out = tmp_path / "out"
    assert (out / "study.log").read_text().splitlines() == ["study -m slmstudy run --profile gpu 01_model_vs_model",
                                                            "study done"]
    assert (out / "study.tar.xz.0").exists()
