"""Figures of a report, drawn from the tidy tables of :class:`segeval.evaluation.Evaluation`.

Plotting never computes statistics. The ``draw_*`` functions draw rows that are already computed
(for one model) on given Axes; :mod:`segeval.plot` offers them to notebooks. The ``*_figure``
functions compose them into the report's figures, built as ``matplotlib.figure.Figure`` objects
without pyplot: no backend is chosen and the user's matplotlib state is never touched.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segeval.segments import GLOBAL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_LEGEND = 12  # beyond this many segments, legends would hide the plot: they are left out
GLOBAL_STYLE = {"color": "black", "linewidth": 2.2, "zorder": 5}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


MAX_FOREST_ROWS = 60  # beyond this many segments the forest shows the extremes only
FOREST_EXTREMES = 25


def _figure(**kwargs: Any) -> Figure:
    """A Figure outside pyplot: rendered by savefig with Agg, whatever the user's backend."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _colors(segments: Sequence[Any]) -> dict[Any, Any]:
    import seaborn as sns

    local = [s for s in segments if s != GLOBAL]
    palette = sns.color_palette("tab10" if len(local) <= 10 else "husl", len(local))
    return dict(zip(local, palette, strict=True))


def _legend(ax: Any, n_segments: int) -> None:
    if n_segments <= MAX_LEGEND:
        ax.legend(fontsize=7, loc="best", frameon=False)


def to_data_uri(fig: Figure, dpi: int = 90) -> str:
    """Render a figure to an inline ``data:image/png;base64,...`` URI and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def forest_rows(metrics: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows a forest plot shows: all, or past MAX_FOREST_ROWS the global row and the
    segments of lowest and highest AUC; and a note saying which."""
    rows = metrics.reset_index(drop=True)
    if len(rows) <= MAX_FOREST_ROWS:
        return rows, ""
    whole = rows[rows.segment == GLOBAL]
    local = rows[rows.segment != GLOBAL].sort_values("auc", kind="stable", na_position="first")
    shown = pd.concat([whole, local.head(FOREST_EXTREMES), local.tail(FOREST_EXTREMES)])
    note = f"{len(local)} segments: the {FOREST_EXTREMES} lowest and highest AUC shown"
    return shown.reset_index(drop=True), note


def draw_forest(ax: Any, metrics: pd.DataFrame, metric: str = "auc") -> Any:
    """``metric`` ("auc" or "wll") with its CI, one row per segment, the whole set in black."""
    rows = metrics.reset_index(drop=True)
    ypos = list(range(len(rows)))[::-1]
    colors = ["black" if s == GLOBAL else "tab:blue" for s in rows.segment]
    ax.hlines(
        ypos, rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"], colors=colors, linewidth=1.5
    )
    ax.scatter(rows[metric], ypos, c=colors, s=14, zorder=3)
    ax.set_xlabel("AUC" if metric == "auc" else "WLL / image")
    ax.grid(axis="x", alpha=0.3)
    names = ["global" if s == GLOBAL else str(s) for s in rows.segment]
    ax.set_yticks(ypos, names, fontsize=7)
    return ax


def forest_figure(metrics: pd.DataFrame, title: str) -> Figure:
    """AUC and WLL with their CIs, one row per segment (the whole set in black, on top)."""
    rows, note = forest_rows(metrics)
    fig = _figure(figsize=(9, min(0.8 + 0.28 * len(rows), 40)))
    axes = fig.subplots(1, 2, sharey=True)
    draw_forest(axes[0], rows, "auc")
    draw_forest(axes[1], rows, "wll")
    fig.suptitle(f"{title} ({note})" if note else title, fontsize=10)
    return fig


def _lines(
    ax: Any,
    curves: list[tuple[Any, Any]],
    colors: list[Any],
    labels: list[str],
    n_segments: int,
    **style: Any,
) -> None:
    """Many curves: labelled lines when a legend is shown, else one fast LineCollection."""
    if n_segments <= MAX_LEGEND:
        for (x, y), color, label in zip(curves, colors, labels, strict=True):
            ax.plot(x, y, color=color, label=label, **style)
        return
    from matplotlib.collections import LineCollection

    segments = [list(zip(x, y, strict=True)) for x, y in curves]
    ax.add_collection(LineCollection(segments, colors=colors, **style))


def draw_roc(ax: Any, roc: pd.DataFrame, points: pd.DataFrame, title: str = "") -> Any:
    """ROC curves (global in black, one per segment) with the operating points marked."""
    segments = list(dict.fromkeys(roc.segment))
    colors = _colors(segments)
    local = [(s, c) for s, c in roc.groupby("segment", sort=False) if s != GLOBAL]
    _lines(
        ax,
        [(c.fpr.to_numpy(), c.tpr.to_numpy()) for _, c in local],
        [colors[s] for s, _ in local],
        [str(s) for s, _ in local],
        len(local),
        linewidth=1,
    )
    whole = roc[roc.segment == GLOBAL]
    ax.plot(whole.fpr, whole.tpr, label="global", **GLOBAL_STYLE)
    thresholds = sorted(points.threshold.unique())
    for k, t in enumerate(thresholds):
        at = points[(points.threshold == t) & points.segment.isin(segments)]
        ax.scatter(
            at.fpr,
            at.tpr,
            marker=MARKERS[k % len(MARKERS)],
            s=22,
            zorder=6,
            c=["black" if s == GLOBAL else colors[s] for s in at.segment],
            edgecolors="white",
            linewidths=0.5,
            label=f"OP t={t:g}",
        )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlabel="FPR", ylabel="TPR", xlim=(0, 1), ylim=(0, 1.01), title=title)
    _legend(ax, len(segments) + len(thresholds))
    return ax


def roc_figure(roc: pd.DataFrame, points: pd.DataFrame, title: str) -> Figure:
    """The report's ROC figure of one model (see :func:`draw_roc`)."""
    fig = _figure(figsize=(5.2, 5))
    draw_roc(fig.subplots(), roc, points, title)
    return fig


def draw_op_points(ax: Any, points: pd.DataFrame) -> Any:
    """Per-segment operating points, one marker per threshold, joined per segment."""
    local = points[points.segment != GLOBAL].sort_values(["segment", "threshold"], kind="stable")
    colors = _colors(list(dict.fromkeys(local.segment)))
    groups = list(local.groupby("segment", sort=False))
    _lines(
        ax,
        [(g.fpr.to_numpy(), g.tpr.to_numpy()) for _, g in groups],
        [colors[s] for s, _ in groups],
        [str(s) for s, _ in groups],
        len(groups),
        linewidth=0.8,
    )
    for k, t in enumerate(sorted(local.threshold.unique())):
        at = local[local.threshold == t]
        ax.scatter(
            at.fpr,
            at.tpr,
            marker=MARKERS[k % len(MARKERS)],
            s=20,
            c=[colors[s] for s in at.segment],
        )
    ax.set(
        xlabel="FPR",
        ylabel="TPR",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="OPs per segment (markers: thresholds)",
    )
    _legend(ax, len(colors))
    return ax


def draw_op_spread(ax: Any, spread: pd.DataFrame) -> Any:
    """The spread of the OPs per threshold, with its CI (0 = synchronized)."""
    x = list(range(len(spread)))
    ax.bar(x, spread.spread, color="tab:orange", alpha=0.8)
    # The spread is a maximum, so its bootstrap distribution sits above it and the percentile
    # interval may not contain the estimate: draw the interval itself, not error bars around it.
    ax.vlines(x, spread.ci_low, spread.ci_high, color="black")
    ax.scatter(x * 2, [*spread.ci_low, *spread.ci_high], marker="_", s=120, color="black")
    ax.set_xticks(x, [f"t={t:g}" for t in spread.threshold])
    ax.set(ylabel="spread (largest OP distance)", title="spread with CI (0 = synchronized)")
    return ax


def op_sync_figure(points: pd.DataFrame, spread: pd.DataFrame, title: str) -> Figure:
    """Per-segment operating points per threshold, and their spread with its CI."""
    fig = _figure(figsize=(9.5, 4.2))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    draw_op_points(left, points)
    draw_op_spread(right, spread)
    fig.suptitle(title, fontsize=10)
    return fig


def _steps(hist: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A histogram as a polyline: each bin a flat segment from its left to its right edge."""
    x = np.ravel(np.column_stack([hist.bin_left, hist.bin_right]))
    return x, np.repeat(hist.density.to_numpy(), 2)


def draw_scores(ax: Any, hist: pd.DataFrame, label: int = 1) -> Any:
    """Score density of one label, one line per segment and the whole set in black."""
    segments = list(dict.fromkeys(hist.segment))
    colors = _colors(segments)
    mine = hist[hist.label == label]
    local = [(s, g) for s, g in mine.groupby("segment", sort=False) if s != GLOBAL]
    _lines(
        ax,
        [_steps(g) for _, g in local],
        [colors[s] for s, _ in local],
        [str(s) for s, _ in local],
        len(local),
        linewidth=1,
    )
    ax.plot(*_steps(mine[mine.segment == GLOBAL]), label="global", **GLOBAL_STYLE)
    name = "malignant (label 1)" if label == 1 else "benign (label 0)"
    ax.set(xlabel="score", ylabel="density", xlim=(0, 1), title=name)
    ax.autoscale_view()
    return ax


def score_figure(hist: pd.DataFrame, title: str) -> Figure:
    """Score densities by label (benign left, malignant right), one line per segment."""
    fig = _figure(figsize=(9.5, 3.6))
    axes = fig.subplots(1, 2)
    draw_scores(axes[0], hist, 0)
    draw_scores(axes[1], hist, 1)
    _legend(axes[1], len(set(hist.segment)))
    fig.suptitle(title, fontsize=10)
    return fig


def draw_training(ax: Any, training: pd.DataFrame, segment: str, metric: str) -> Any:
    """Validation ``metric`` ("wll" or "auc") over the steps on one segment, a line per run."""
    for run, rows in training[training.segment == segment].groupby("run", sort=True):
        rows = rows.sort_values("step")
        ax.plot(rows.step, rows[metric], label=run, linewidth=1.2)
    ax.set_title("global" if segment == GLOBAL else f"local {segment}", fontsize=9)
    ax.set_xlabel("step")
    return ax


def training_figure(training: pd.DataFrame, max_columns: int = 8) -> Figure:
    """Validation WLL and AUC over the steps: global and each segment, one line per run."""
    segments = [GLOBAL, *[s for s in dict.fromkeys(training.segment) if s != GLOBAL]]
    segments = segments[:max_columns]
    fig = _figure(figsize=(3.2 * len(segments), 5.5))
    axes = fig.subplots(2, len(segments), squeeze=False, sharex=True)
    for col, segment in enumerate(segments):
        draw_training(axes[0][col], training, segment, "wll")
        draw_training(axes[1][col], training, segment, "auc")
        axes[0][col].set_xlabel("")
    axes[0][0].set_ylabel("validation WLL / image")
    axes[1][0].set_ylabel("validation AUC")
    axes[0][0].legend(fontsize=7, frameon=False)
    return fig
