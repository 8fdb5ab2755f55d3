"""segeval.plot: functions take an Evaluation or its frame and ax=None, and return the Axes;
neither importing segeval nor drawing a report touches the user's matplotlib backend."""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import pytest

matplotlib.use("Agg")  # the test chooses; the library never does
import matplotlib.pyplot as plt

import segeval as se
from segeval.synthetic import make_predictions
from segeval.validation import InputError


@pytest.fixture(scope="module")
def evaluation():
    preds = make_predictions(scale=0.05, seed=0)
    return se.evaluate(preds, segment_by="source", baseline="single_segment", n_boot=10)


@pytest.mark.parametrize(
    "draw", [se.plot.forest, se.plot.roc, se.plot.op_points, se.plot.op_spread, se.plot.scores]
)
def test_each_plot_draws_on_the_given_axes(evaluation, draw):
    fig, ax = plt.subplots()
    assert draw(evaluation, model="periodic", ax=ax) is ax
    assert ax.has_data()
    plt.close(fig)


def test_plots_accept_the_frame_and_make_axes_when_none(evaluation):
    metrics = evaluation.metrics[evaluation.metrics.model == "periodic"]
    ax = se.plot.forest(metrics, metric="wll")
    assert ax.has_data() and ax.get_xlabel() == "Weighted log loss"
    plt.close(ax.figure)


def test_a_model_must_be_named_when_there_are_several(evaluation):
    with pytest.raises(InputError, match="Give model=, one of bal_labels, periodic"):
        se.plot.forest(evaluation)
    with pytest.raises(InputError, match="Unknown model 'nobody'"):
        se.plot.roc(evaluation, model="nobody")


def test_forest_summarizes_many_segments():
    import pandas as pd

    rows = pd.DataFrame(
        {
            "segment": ["__global__", *[f"s{k}" for k in range(300)]],
            "auc": [0.8, *[k / 300 for k in range(300)]],
            "auc_ci_low": 0.1,
            "auc_ci_high": 0.9,
        }
    )
    ax = se.plot.forest(rows)
    assert len(ax.get_yticks()) == 1 + 2 * 25 and "300 segments" in ax.get_title()
    plt.close(ax.figure)


def test_scores_has_a_legend_that_names_the_colours(evaluation):
    """plot.scores drew coloured lines and no legend: nothing said which segment was which."""
    fig, ax = plt.subplots()
    se.plot.scores(evaluation, model="periodic", label=0, ax=ax)
    legend = ax.get_legend()
    assert legend is not None and legend.get_title().get_text() == "colour: segment"
    texts = [t.get_text() for t in legend.get_texts()]
    segments = [s for s in evaluation.segments if s != se.GLOBAL]
    for segment in segments:
        assert any(t.startswith(f"{segment} (n = ") for t in texts), (segment, texts)
    assert any(t.startswith("global (n = ") for t in texts)
    plt.close(fig)


def test_training_without_runs_draws_no_legend_and_warns_nothing(evaluation):
    """matplotlib warned "No artists with labels found to put in legend"."""
    import warnings

    assert len(evaluation.training) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = se.plot.training(evaluation)
    assert ax.get_legend() is None
    plt.close(ax.figure)


def test_importing_and_writing_a_report_leave_the_backend_alone(tmp_path):
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import segeval, segeval.plot, segeval.plots, segeval.report\n"
        "from segeval.synthetic import make_predictions\n"
        "ev = segeval.evaluate(make_predictions(scale=0.03), segment_by='source', n_boot=5)\n"
        f"ev.write({str(tmp_path / 'r.html')!r})\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
