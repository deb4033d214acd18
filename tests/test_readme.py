"""The README's numbers and the generated docs agree with the committed reference
tables: ``python -m slmstudy docs`` regenerates them, and a stale copy fails here."""

from __future__ import annotations

import re

from slmstudy import paths, readme


def test_generated_files_match_the_references():
    stale = [str(p.relative_to(paths.project_root())) for p, text in readme.files().items()
             if not p.exists() or p.read_text() != text]
    assert not stale, f"regenerate with `python -m slmstudy docs`: {', '.join(stale)}"


def test_readme_has_its_generated_blocks_and_quotes_no_number_by_hand():
    text = (paths.project_root() / "README.md").read_text()
    names = re.findall(r"<!-- BEGIN GENERATED: ([\w-]+) -->", text)
    assert names == ["results", "limitations"]
    # the results section is the generated block: numbers with units outside it would be typed by hand
    head = text.split("## Results on an NVIDIA H100", 1)[1].split("## Your own parameters", 1)[0]
    outside = readme.BLOCK.sub("", head)
    assert not re.search(r"\d[\d,.]* ?(tok/s|GiB|ms|%)", outside), outside


def test_a_changed_reference_changes_the_readme(monkeypatch, tmp_path):
    # the block is computed from the tables, not kept: another reference, other text
    import shutil

    ref = tmp_path / "reference"
    shutil.copytree(paths.reference_dir() / "h100" / "03_batch_scaling", ref / "h100" / "03_batch_scaling")
    monkeypatch.setattr(paths, "reference_dir", lambda: ref)
    only_sweep = readme.results_block()
    assert "Batch scaling" in only_sweep and "Serving" not in only_sweep


def test_study_minutes_of_lent_calls_and_of_a_pool_analysed_elsewhere():
    import pandas as pd

    # three calls of the lent machine: their totals add up, a job reused by a later call counts once
    calls = pd.DataFrame([
        {"job": "a", "kind": "engine", "wall_s": 300.0, "reused": False},
        {"job": "study", "kind": "total", "wall_s": 330.0},
        {"job": "a", "kind": "engine", "wall_s": 300.0, "reused": True},
        {"job": "b", "kind": "serve", "wall_s": 200.0, "reused": False},
        {"job": "01", "kind": "notebook", "wall_s": 30.0},
        {"job": "study", "kind": "total", "wall_s": 240.0}])
    minutes, jobs, nbs = readme.study_minutes(calls)
    assert minutes == (330 + 240) / 60 == 9.5 and list(jobs["job"]) == ["a", "b"] and len(nbs) == 1
    # no call totals (tools/pool_timing.py): the jobs' and the notebooks' own times
    pool = calls[calls["kind"] != "total"].drop(columns="reused").drop_duplicates("job")
    minutes, jobs, _ = readme.study_minutes(pool)
    assert minutes == (300 + 200 + 30) / 60 and len(jobs) == 2


def test_a_layers_folder_is_quoted_with_the_commit_that_measured_it(monkeypatch, tmp_path):
    # the opt-in layers' evidence is not the default study's: its line names its layer and commit
    import shutil

    from slmstudy.results.run_folder import RunView

    src = paths.reference_dir() / "h100" / "06_edge_sweep"  # measured by sweep_gpu.yaml (1-16 threads)
    ref = tmp_path / "reference"
    shutil.copytree(src, ref / "h100" / "06_edge_sweep")
    monkeypatch.setattr(paths, "reference_dir", lambda: ref)
    commit = RunView(src).environment()["git_commit"][:7]
    (line,) = readme.lines.layer_lines()
    assert f"params/06_edge/sweep_gpu.yaml`, measured by {commit}" in line
    # the sweep's largest thread count is quoted beside article 001's 4 threads, F16 with it
    assert "at 4 threads" in line and "at 16 threads" in line and "F16 at 16" in line


def test_where_the_study_time_goes_adds_up_by_hand():
    import pandas as pd

    jobs = pd.DataFrame([
        {"job": "m__bf16__dummy__cold", "kind": "engine", "wall_s": 120.0, "import_s": 25.0, "engine_start_s": 90.0,
         "measure_s": 0.0},
        {"job": "m__bf16__dummy", "kind": "engine", "wall_s": 110.0, "import_s": 0.0, "engine_start_s": 20.0,
         "measure_s": 84.0},
        {"job": "m__bf16__dummy__serve", "kind": "serve", "wall_s": 150.0},
        {"job": "hardware", "kind": "hardware", "wall_s": 6.0}])
    nbs = pd.DataFrame([{"job": "03", "kind": "notebook", "wall_s": 30.0}])
    # cold 120 s = 2.0 min; warm start 20 s; measuring 84 s = 1.4 min; the rest 110 - 20 - 84 = 6 s
    assert readme.time_split(jobs, nbs) == (
        "cold engine starts (01) 2.0 min, other engines' vLLM imports and starts 0.3 min, offline measuring 1.4 min, "
        "the rest of the offline jobs (launch, shutdown, memory back) 0.1 min, servers (start and load levels) "
        "2.5 min, probes 0.1 min, notebooks 0.5 min")
    # one process's wall of 426 s: the jobs took 386, so the notebooks (side by side) 40 s, not
    # their own times' sum (60)
    nbs2 = pd.concat([nbs, nbs])
    assert readme.time_split(jobs, nbs2, total_s=426.0).endswith(
        "probes 0.1 min, notebooks (side by side) and the gaps between jobs 0.7 min")
    assert readme.time_split(jobs, nbs2, total_s=500.0).endswith("notebooks 1.0 min")


def test_the_time_limitation_names_the_part_that_runs_alone(monkeypatch, tmp_path):
    """Over 15 minutes: the line names 06_edge's share (GGUF files and llama.cpp, 54 + 126 s =
    3.0 min) as the part that runs alone; under 15 minutes there is no limitation line."""
    import pandas as pd

    from slmstudy.readme import timing

    rows = [{"job": "m__bf16__dummy", "kind": "engine", "wall_s": 700.0, "import_s": 0.0, "engine_start_s": 20.0,
             "measure_s": 600.0},
            {"job": "m__gguf-Q4_K_M__file", "kind": "gguf_file", "wall_s": 54.0},
            {"job": "m__gguf-Q4_K_M__t4", "kind": "edge", "wall_s": 126.0},
            {"job": "03_batch_scaling", "kind": "notebook", "wall_s": 30.0},
            {"job": "study", "kind": "total", "wall_s": 960.0}]
    pd.DataFrame(rows).to_csv(tmp_path / "study_timing.csv", index=False)
    monkeypatch.setattr(timing, "reference_dir", lambda: tmp_path)
    (line,) = timing.timing_limitation()
    assert line.startswith("* **The GPU study takes 16.0 min**")
    assert "06_edge's 3.0 min of GGUF files and llama.cpp" in line
    rows[-1]["wall_s"] = 880.0  # 14.7 min
    pd.DataFrame(rows).to_csv(tmp_path / "study_timing.csv", index=False)
    assert timing.timing_limitation() == []


def test_the_serving_line_says_what_each_level_sent_and_a_stopped_level_that_lost_nothing():
    """04's fidelity folder (both models, per_user 10): the line's request counts are the ones
    each tool's levels recorded (10 x 8 = 80, 10 x 32 = 320; 64 at 1 user, where 10 is fewer),
    and each model's 128 req/s level, stopped past capacity with no request failed, says so
    instead of listing an empty error count, with every request it sent, not only its window's."""
    from slmstudy.readme.lines import serving_fidelity_lines
    from slmstudy.results.run_folder import RunView

    v = RunView(paths.reference_dir() / "h100" / "04_serving_fidelity")
    xc = v.table("serve_crosscheck")
    sent = xc.groupby(["model", "level"])["requests"].unique()
    assert {k: list(r) for k, r in sent.items()} == {
        (m, lvl): [n] for m in xc["model"].unique() for lvl, n in ((1.0, 64), (8.0, 80), (32.0, 320))}
    head, windows = serving_fidelity_lines(v, "")  # no tool failed: no line of failures
    assert "64 requests per level (80 at 8, 320 at 32 users: 10 per user)" in head
    lv = v.table("levels")
    stopped = lv[lv["overloaded"].fillna(False).astype(bool)]
    assert len(stopped) == 2 and set(stopped["model"]) == set(xc["model"])
    for r in stopped.itertuples():
        # the level's row counts its window; the per-request table holds all it sent
        sent = v.table("requests").query("model == @r.model and mode == 'rate' and level == @r.level")
        assert r.errors == 0 and sent["ok"].all() and len(sent) == r.sent > r.requests
        assert f"none of the {r.sent:,} requests it sent failed ({r.requests:,} in its window)" in windows
    assert "()" not in windows


def test_the_front_end_line_reads_each_pair_of_the_folder():
    """The front-end A/B's folders (e6c2e91): the README quotes, per model, each AsyncLLM mode's
    mean difference from LLM.generate, worked out here from the per-run rows: per pair
    100 * (mode / llm - 1), averaged over the pairs; and the slowest and fastest LLM.generate
    run at the largest batch."""
    from slmstudy.results.run_folder import RunView

    text = (paths.project_root() / "README.md").read_text()
    for name, models in (("03_batch_scaling_frontends", 2), ("03_batch_scaling_frontends_llama", 1)):
        v = RunView(paths.reference_dir() / "h100" / name)
        runs = v.table("frontend")
        assert runs["model"].nunique() == models and (runs["short_outputs"] == 0).all()
        line = next(ln for ln in text.splitlines() if f"(outputs/reference/h100/{name})" in ln)
        for model, g in runs.groupby("model"):
            per = []
            for mode in ("stream", "final"):
                cells = []
                for batch, b in g.groupby("batch"):
                    wide = b.pivot_table(index="pair", columns="mode", values="output_tok_s")
                    assert len(wide) == 12
                    cells.append(f"{(100 * (wide[mode] / wide['llm'] - 1)).mean():+.1f}")
                per.append("/".join(cells))
            assert f"our streamed path {per[0]}% and AsyncLLM with final outputs only {per[1]}% at batch 1/16/64/256" \
                in line
            top = g[(g["batch"] == 256) & (g["mode"] == "llm")]["output_tok_s"]
            assert f"batch 256 spanned {top.min():,.0f} to {top.max():,.0f} tok/s" in line
