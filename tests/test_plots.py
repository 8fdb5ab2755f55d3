"""Figures: drawn from the tables as given, legends only when readable, odd values tolerated."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from segeval import plots


def points(segments):
    rows = [
        {"segment": s, "threshold": t, "fpr": t / 2, "tpr": 1 - t / 3}
        for s in segments
        for t in (0.2, 0.4)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n_segments", [3, 40])
def test_roc_figure_draws_every_segment(n_segments):
    segments = ["__global__", *[f"s{k}" for k in range(n_segments)]]
    roc = pd.DataFrame(
        [{"segment": s, "fpr": x, "tpr": x**0.5} for s in segments for x in np.linspace(0, 1, 5)]
    )
    fig = plots.roc_figure(roc, points(segments), "m")
    ax = fig.axes[0]
    drawn = len(ax.lines) + sum(
        len(c.get_segments()) for c in ax.collections if hasattr(c, "get_segments")
    )
    assert drawn >= n_segments + 1  # every segment and the global curve
    assert (ax.get_legend() is not None) == (n_segments + 1 + 2 <= plots.MAX_LEGEND)


def test_op_sync_figure_accepts_an_estimate_outside_its_interval():
    spread = pd.DataFrame(
        {
            "threshold": [0.2, 0.4],
            "spread": [0.05, 0.3],
            "ci_low": [0.07, np.nan],
            "ci_high": [0.2, np.nan],
        }
    )
    fig = plots.op_sync_figure(points(["a", "b"]), spread, "m")
    assert len(fig.axes) == 2
    assert plots.to_data_uri(fig).startswith("data:image/png;base64,")


def test_forest_and_score_figures():
    metrics = pd.DataFrame(
        {
            "segment": ["__global__", "a"],
            "auc": [0.8, 0.7],
            "auc_ci_low": [0.75, 0.6],
            "auc_ci_high": [0.85, 0.8],
            "wll": [0.5, 0.6],
            "wll_ci_low": [0.45, 0.5],
            "wll_ci_high": [0.55, 0.7],
        }
    )
    fig = plots.forest_figure(metrics, "m")
    ticks = {
        t.get_text(): y
        for t, y in zip(fig.axes[0].get_yticklabels(), fig.axes[0].get_yticks(), strict=True)
    }
    assert ticks["global"] > ticks["a"]  # the whole set on top
    edges = np.linspace(0, 1, 5)
    hist = pd.DataFrame(
        [
            {"segment": s, "label": lab, "bin_left": lo, "bin_right": hi, "density": 1.0}
            for s in ("__global__", "a")
            for lab in (0, 1)
            for lo, hi in itertools.pairwise(edges)
        ]
    )
    assert len(plots.score_figure(hist, "m").axes) == 2
    training = pd.DataFrame(
        {
            "run": "r",
            "step": [1, 2, 1, 2],
            "segment": ["__global__"] * 2 + ["a"] * 2,
            "wll": [0.7, 0.6, 0.8, 0.7],
            "auc": [0.6, 0.7, 0.5, 0.6],
        }
    )
    assert len(plots.training_figure(training).axes) == 4


DPI = 90  # the report's (plots.to_data_uri)


def texts(fig):
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def training_log(segments, undefined=()):
    rng = np.random.default_rng(0)
    rows = [
        {
            "run": run,
            "step": step,
            "segment": s,
            # values that differ in the 6th decimal: matplotlib would draw an offset text
            "wll": np.nan if s in undefined else 0.7522 + 1e-5 * rng.random(),
            "auc": np.nan if s in undefined else 0.7 + 0.1 * rng.random(),
            "n_pos": 0 if s in undefined else 10,
            "n_neg": 50,
        }
        for run in ("a", "b")
        for step in range(1000, 20001, 1000)
        for s in segments
    ]
    return pd.DataFrame(rows)


def test_training_figure_shows_every_segment_and_says_why_one_is_undefined():
    segments = ["__global__", *[f"s{k}" for k in range(9)], "empty"]
    fig = plots.training_figure(training_log(segments, undefined=["empty"]))
    fig.draw_without_rendering()
    titles = {ax.get_title() for ax in fig.axes if ax.get_visible()}
    assert titles == {"global", *[f"local {s}" for s in segments[1:]]}  # no cap at 8
    shown = " ".join(t.get_text() for t in texts(fig)).replace("\n", " ")
    assert "undefined: its validation images are all benign" in shown
    drawn = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(drawn) == 2 * 10
    for ax in drawn:
        assert ax.yaxis.get_offset_text().get_text() == ""
        assert ax.xaxis.get_offset_text().get_text() == ""
    # no tick label runs into the panel on its right
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    by_row = {}
    for ax in drawn:
        by_row.setdefault(round(ax.get_position().y0, 3), []).append(ax)
    for row in by_row.values():
        row.sort(key=lambda a: a.get_position().x0)
        for left, right in itertools.pairwise(row):
            assert left.get_tightbbox(renderer).x1 <= right.get_tightbbox(renderer).x0


def metrics_rows(model, shift):
    return pd.DataFrame(
        {
            "model": model,
            "segment": ["__global__", "a", "b"],
            "n_pos": [200, 150, 1],
            "n_neg": [800, 600, 200],
            "auc": [0.8 + shift, 0.7 + shift, 0.9],
            "auc_ci_low": [0.75 + shift, 0.6 + shift, np.nan],
            "auc_ci_high": [0.85 + shift, 0.8 + shift, np.nan],
            "wll": [0.5, 0.6 + shift, 0.9],
            "wll_ci_low": [0.45, 0.5, np.nan],
            "wll_ci_high": [0.55, 0.7 + shift, np.nan],
        }
    )


def test_forest_plots_share_axes_mark_the_global_value_and_the_unstable_segment():
    from segeval.report import forest_limits

    a, b = metrics_rows("a", 0.0), metrics_rows("b", 0.1)
    limits = forest_limits(pd.concat([a, b]))
    figs = [
        plots.forest_figure(a, "a", xlims=limits),
        plots.forest_figure(b, "b", baseline=a, xlims=limits),
    ]
    for metric_axis in (0, 1):
        assert figs[0].axes[metric_axis].get_xlim() == figs[1].axes[metric_axis].get_xlim()
    ax = figs[1].axes[0]
    assert any(list(line.get_xdata()) == [0.9, 0.9] for line in ax.lines)  # the global AUC
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["global", "a", "b (unstable)"]  # the one-positive segment keeps its row
    legend = [t.get_text() for t in figs[1].legends[0].get_texts()]
    assert legend[0] == "baseline a" and legend[1].startswith("unstable")


def test_roc_legend_gives_each_auc_and_the_threshold_markers():
    segments = ["__global__", "s1", "s2"]
    roc = pd.DataFrame(
        [{"segment": s, "fpr": x, "tpr": x**0.5} for s in segments for x in np.linspace(0, 1, 5)]
    )
    aucs = {"__global__": 0.81, "s1": 0.7, "s2": 0.9}
    fig = plots.roc_figure(roc, points(segments), "m", aucs=aucs)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "s1, AUC 0.700" in legend and "global, AUC 0.810" in legend
    assert "t = 0.2" in legend and "t = 0.4" in legend


def test_score_scale_is_not_set_by_a_segment_with_few_positives():
    edges = np.linspace(0, 1, 5)
    hist = pd.DataFrame(
        [
            {
                "segment": s,
                "label": 1,
                "bin_left": lo,
                "bin_right": hi,
                "density": 40.0 if s == "rare" and lo == 0 else 1.0,
                "n": 3 if s == "rare" else 500,
            }
            for s in ("__global__", "common", "rare")
            for lo, hi in itertools.pairwise(edges)
        ]
    )
    fig = plots.score_figure(hist.assign(label=1), "m")
    ax = fig.axes[1]
    assert ax.get_ylim()[1] < 2
    assert "rare (n = 3)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_op_spread_states_its_scale_and_undefined_thresholds():
    spread = pd.DataFrame(
        {
            "threshold": [0.2, 0.4],
            "spread": [0.3, np.nan],
            "ci_low": [0.2, np.nan],
            "ci_high": [0.4, np.nan],
        }
    )
    fig = plots.op_sync_figure(points(["a", "b"]), spread, "m")
    right = fig.axes[1]
    assert right.get_ylim()[1] >= 2**0.5 and "√2" in right.get_ylabel()
    assert "undefined" in [t.get_text() for t in right.texts]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"t = 0.2", "t = 0.4"} <= set(legend)


def test_report_figures_text_is_at_least_10_px_on_a_1400_px_page():
    from segeval.evaluation import evaluate
    from segeval.report import figures
    from segeval.synthetic import make_predictions

    ev = evaluate(
        make_predictions(scale=0.1, seed=3),
        segment_by="source",
        baseline="single_segment",
        n_boot=20,
    )
    import base64
    import io

    from PIL import Image

    for kind, images in figures(ev).items():
        for model, uri in images.items():
            width = Image.open(io.BytesIO(base64.b64decode(uri.split(",")[1]))).size[0]
            # shown at natural size when it fits the page's 1300 px column
            assert width <= 1300, (kind, model, width)
    card = plots.forest_figure(ev.metrics[ev.metrics.model == "periodic"], "periodic")
    for fig in (card, plots.training_figure(training_log(["__global__", "s"]))):
        for t in texts(fig):
            assert t.get_fontsize() * DPI / 72 >= 10, (t.get_text(), t.get_fontsize())
