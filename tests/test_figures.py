"""Every figure function drawn over the committed CPU reference runs: it renders,
and no legend covers an axis label or a title (matplotlib's own bounding boxes)."""

from __future__ import annotations

import shutil

import matplotlib
import pytest
import yaml

from slmstudy import figures, paths
from slmstudy.experiments import (batch_scaling, claims_report, edge, model_vs_model, precision, registry, serving,
                                  serving_bounds)
from slmstudy.experiments.base import Study
from slmstudy.params import Resolved

matplotlib.use("Agg")
CPU = paths.reference_dir() / "cpu"


def _study(notebook: str, tmp_path) -> Study:
    folder = tmp_path / notebook
    shutil.copytree(CPU / notebook, folder)
    saved = yaml.safe_load((folder / "params.yaml").read_text())
    experiment = registry.experiment(notebook)
    resolved = Resolved(notebook, saved["profile"], experiment.params.model_validate(saved["params"]),
                        tuple(saved["sources"]))
    return Study(experiment, resolved, root=folder)


def _overlaps(fig) -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure was closed after saving: draw it on a canvas of its own
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
    texts = [t for ax in fig.axes if ax.get_visible() for t in (ax.xaxis.label, ax.yaxis.label, ax.title)
             if t.get_text() and t.get_visible()]
    out = []
    for lg in legends:
        box = lg.get_window_extent(renderer)
        out += [f"legend over {t.get_text()!r}" for t in texts if box.overlaps(t.get_window_extent(renderer))]
    return out


def timeline_closed_loop(study):
    return serving_bounds.figure_timelines(study, "concurrency")


def timeline_poisson(study):
    return serving_bounds.figure_timelines(study, "rate")


def edge_scaling(study):
    return edge.scaling_figure(study, edge.speed(study))


CASES = {
    "01_model_vs_model": [model_vs_model.speed_figure, figures.memory_picture, figures.utilization_traces],
    "02_precision": [precision.figure, figures.utilization_traces, figures.memory_picture],
    "03_batch_scaling": [batch_scaling.scaling_figure, batch_scaling.roofline_figure, figures.utilization_traces,
                         figures.memory_picture],
    "04_serving": [serving.figure_latency_throughput, serving.figure_distributions, figures.utilization_traces,
                   timeline_closed_loop, timeline_poisson],
    "06_edge": [edge_scaling],
}


@pytest.mark.parametrize("notebook,draw", [(nb, fn) for nb, fns in CASES.items() for fn in fns],
                         ids=[f"{nb}-{fn.__name__}" for nb, fns in CASES.items() for fn in fns])
def test_figure_renders_with_legends_clear_of_labels(notebook, draw, tmp_path):
    fig = draw(_study(notebook, tmp_path))
    assert fig.axes and not _overlaps(fig), _overlaps(fig)
    assert list((tmp_path / notebook / "figures").glob("*.png"))


def test_report_headlines_render_over_the_cpu_runs(tmp_path):
    for nb in ("01_model_vs_model", "02_precision", "03_batch_scaling", "04_serving"):
        shutil.copytree(CPU / nb, tmp_path / "ref" / nb)
    r = registry.resolve("00_report", "cpu", overrides={"source": str(tmp_path / "ref")})
    study = Study(registry.experiment("00_report"), r, root=tmp_path / "report")
    runs = claims_report.find_runs(study)
    assert set(runs) == {"01_model_vs_model", "02_precision", "03_batch_scaling", "04_serving"}
    for draw in (claims_report.headline_scaling, claims_report.headline_precision):
        fig = draw(study, runs)
        assert not _overlaps(fig), (draw.__name__, _overlaps(fig))


def test_traces_are_smoothed_and_name_the_models_run(tmp_path):
    study = _study("03_batch_scaling", tmp_path)
    fig = figures.utilization_traces(study)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles and all("tiny-" in t for t in titles)  # the CPU stand-ins, not the full-size models
    raw = study.table("telemetry")
    one = raw[raw["config"] == raw["config"].iloc[0]]
    line = fig.axes[0].get_lines()[0].get_ydata()
    assert len(line) == len(one) and line.std() < one["cpu_pct"].std()  # a half-second mean, no raw 10 Hz noise
