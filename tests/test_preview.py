"""``run --plan`` (measure.preview): what the pool holds for each job of a plan, and
how long the same job took before, in the pool and in the committed references."""

from __future__ import annotations

import pandas as pd

from slmstudy.atomic import write_json
from slmstudy.experiments import registry
from slmstudy.jobs import dump
from slmstudy.measure import plan, preview
from slmstudy.results.pool import Pool, manifest

LABEL = "1111111aaaaa"


def _jobs():
    r = registry.resolve("03_batch_scaling", "gpu", machine=False)
    return plan.build(registry.experiment("03_batch_scaling").jobs(r.params))


def _entry(pool: Pool, job, label: str, wall_s: float, ok: bool = True, finished: bool = True) -> None:
    e = pool.entry(job)
    e.dir.mkdir(parents=True)
    (e.dir / "spec.json").write_text(dump(job))
    if finished:
        write_json(e.dir / "status.json", {
            "status": "ok" if ok else "failed", "root_cause": None if ok else "CUDA out of memory",
            "identity_label": label, "finished_at": 1.0, "timing": {"wall_s": wall_s},
            "manifest": manifest(e.dir)})


def test_each_job_says_what_the_pool_holds_and_how_long_it_took(tmp_path):
    jobs = _jobs()  # hardware, DeepSeek's engine, Llama's engine
    assert [j.kind for j in jobs] == ["hardware", "engine", "engine"]
    pool = Pool(tmp_path / "pool")
    _entry(pool, jobs[0], LABEL, 4.0)                       # this code's: reused
    _entry(pool, jobs[1], "2222222bbbbb", 80.0)             # another commit's: measured again
    _entry(pool, jobs[2], LABEL, 70.0, finished=False)      # a run that did not finish
    refs = {pool.entry(jobs[2]).dir.name: (66.0, "f98d106")}
    table = preview.rows(jobs, pool, LABEL, references=refs)
    assert [r["measure"] for r in table] == [False, True, True]
    assert table[0]["pool"] == f"reused ({LABEL})"
    assert "measured by other code (2222222bbbbb" in table[1]["pool"]
    assert "did not finish" in table[2]["pool"]
    assert [r["last_wall_s"] for r in table] == [4.0, 80.0, None]
    assert table[2]["reference_wall_s"] == 66.0 and table[1]["reference_wall_s"] is None
    # to measure: DeepSeek (its pool entry took 80 s) and Llama (66 s in the references)
    assert preview.summary(table) == "2 of 3 jobs to measure; they took 146 s before"
    # reusing older code's rows leaves only Llama
    assert [r["measure"] for r in preview.rows(jobs, pool, LABEL, reuse_older=True)] == [False, False, True]


def test_reference_times_take_the_newest_row_of_the_same_parameters(tmp_path):
    for folder, at, wall, commit in (("old", 1.0, 90.0, "a" * 40), ("new", 2.0, 60.0, "b" * 40)):
        (tmp_path / folder / "tables").mkdir(parents=True)
        pd.DataFrame({"job": ["x"], "pool_entry": ["x-0123456789"], "kind": ["engine"], "measured_at": [at],
                      "wall_s": [wall], "git_commit": [commit]}).to_csv(tmp_path / folder / "tables" / "timing.csv")
    assert preview.reference_times(tmp_path) == {"x-0123456789": (60.0, "bbbbbbb")}


def test_the_cli_prints_the_plan_without_measuring(tmp_path, capsys, monkeypatch):
    from slmstudy import cli

    monkeypatch.setenv("SLMSTUDY_RUNS_DIR", str(tmp_path / "runs"))
    assert cli.main(["run", "03_batch_scaling", "--profile", "gpu", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 jobs to measure" in out and "deepseek-r1-distill-qwen-1.5b__bf16__dummy" in out
    assert not (tmp_path / "runs").exists()
