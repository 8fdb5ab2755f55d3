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
