"""Figures of a report, drawn from the tidy tables of :class:`segeval.evaluate.Evaluation`.

Plotting never computes statistics: every function takes rows that are already computed (for one
model) and returns a matplotlib Figure. matplotlib is imported lazily with the Agg backend, so
``import segeval`` stays light and no display is needed.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from segeval.segments import GLOBAL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_LEGEND = 12  # beyond this many segments, legends would hide the plot: they are left out
GLOBAL_STYLE = {"color": "black", "linewidth": 2.2, "zorder": 5}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _pyplot() -> Any:  # matplotlib.pyplot, imported on first use
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def forest_figure(metrics: pd.DataFrame, title: str) -> Figure:
    """AUC and WLL with their CIs, one row per segment (the whole set in black, on top)."""
    plt = _pyplot()
    rows = metrics.reset_index(drop=True)
    height = 0.8 + 0.28 * len(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9, min(height, 40)), sharey=True)
    ypos = list(range(len(rows)))[::-1]
    colors = ["black" if s == GLOBAL else "tab:blue" for s in rows.segment]
    for ax, metric, label in ((axes[0], "auc", "AUC"), (axes[1], "wll", "WLL / image")):
        ax.hlines(
            ypos, rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"], colors=colors, linewidth=1.5
        )
        ax.scatter(rows[metric], ypos, c=colors, s=14, zorder=3)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    names = ["global" if s == GLOBAL else str(s) for s in rows.segment]
    axes[0].set_yticks(ypos, names, fontsize=7 if len(rows) <= 60 else 3)
    fig.suptitle(title, fontsize=10)
    return cast("Figure", fig)


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


def roc_figure(roc: pd.DataFrame, points: pd.DataFrame, title: str) -> Figure:
    """ROC curves (global in black, one per segment) with the operating points marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5))
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
    return cast("Figure", fig)


def op_sync_figure(points: pd.DataFrame, spread: pd.DataFrame, title: str) -> Figure:
    """Per-segment operating points per threshold, and their spread with its CI."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(9.5, 4.2), gridspec_kw={"width_ratios": [1.3, 1]}
    )
    local = points[points.segment != GLOBAL].sort_values(["segment", "threshold"], kind="stable")
    colors = _colors(list(dict.fromkeys(points.segment[points.segment != GLOBAL])))
    groups = list(local.groupby("segment", sort=False))
    _lines(
        left,
        [(g.fpr.to_numpy(), g.tpr.to_numpy()) for _, g in groups],
        [colors[s] for s, _ in groups],
        [str(s) for s, _ in groups],
        len(groups),
        linewidth=0.8,
    )
    for k, t in enumerate(sorted(local.threshold.unique())):
        at = local[local.threshold == t]
        left.scatter(
            at.fpr,
            at.tpr,
            marker=MARKERS[k % len(MARKERS)],
            s=20,
            c=[colors[s] for s in at.segment],
        )
    left.set(
        xlabel="FPR",
        ylabel="TPR",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="OPs per segment (markers: thresholds)",
    )
    _legend(left, len(colors))
    x = list(range(len(spread)))
    right.bar(x, spread.spread, color="tab:orange", alpha=0.8)
    # The spread is a maximum, so its bootstrap distribution sits above it and the percentile
    # interval may not contain the estimate: draw the interval itself, not error bars around it.
    right.vlines(x, spread.ci_low, spread.ci_high, color="black")
    right.scatter(x * 2, [*spread.ci_low, *spread.ci_high], marker="_", s=120, color="black")
    right.set_xticks(x, [f"t={t:g}" for t in spread.threshold])
    right.set(ylabel="spread (largest OP distance)", title="spread with CI (0 = synchronized)")
    fig.suptitle(title, fontsize=10)
    return cast("Figure", fig)


def _steps(hist: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A histogram as a polyline: each bin a flat segment from its left to its right edge."""
    x = np.ravel(np.column_stack([hist.bin_left, hist.bin_right]))
    return x, np.repeat(hist.density.to_numpy(), 2)


def score_figure(hist: pd.DataFrame, title: str) -> Figure:
    """Score densities by label (benign left, malignant right), one line per segment."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    segments = list(dict.fromkeys(hist.segment))
    colors = _colors(segments)
    for ax, label, name in ((axes[0], 0, "benign (label 0)"), (axes[1], 1, "malignant (label 1)")):
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
        ax.set(xlabel="score", ylabel="density", xlim=(0, 1), title=name)
        ax.autoscale_view()
    _legend(axes[1], len(segments))
    fig.suptitle(title, fontsize=10)
    return cast("Figure", fig)


def training_figure(training: pd.DataFrame, max_columns: int = 8) -> Figure:
    """Validation WLL and AUC over the steps: global and each segment, one line per run."""
    plt = _pyplot()
    segments = [GLOBAL, *[s for s in dict.fromkeys(training.segment) if s != GLOBAL]]
    segments = segments[:max_columns]
    fig, axes = plt.subplots(
        2, len(segments), figsize=(3.2 * len(segments), 5.5), squeeze=False, sharex=True
    )
    for col, segment in enumerate(segments):
        for run, rows in training[training.segment == segment].groupby("run", sort=True):
            rows = rows.sort_values("step")
            axes[0][col].plot(rows.step, rows.wll, label=run, linewidth=1.2)
            axes[1][col].plot(rows.step, rows.auc, label=run, linewidth=1.2)
        axes[0][col].set_title("global" if segment == GLOBAL else f"local {segment}", fontsize=9)
        axes[1][col].set_xlabel("step")
    axes[0][0].set_ylabel("validation WLL / image")
    axes[1][0].set_ylabel("validation AUC")
    axes[0][0].legend(fontsize=7, frameon=False)
    return cast("Figure", fig)
