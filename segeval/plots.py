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

from segeval.audit import MIN_POSITIVES
from segeval.registry import get_metric
from segeval.segments import GLOBAL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_LEGEND = 12  # beyond this many segments, legends would hide the plot: they are left out
GLOBAL_STYLE = {"color": "black", "linewidth": 2.2, "zorder": 5}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# Figures are saved at 90 dpi and shown unscaled on a 1400 px page: 8.5 pt is 10.6 px there.
SMALL = 8.5
SQRT2 = 2**0.5  # the largest distance between two points of the ROC square: the spread's top


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
        ax.legend(fontsize=SMALL, loc="best", frameon=False)


def _threshold_handles(ax: Any, thresholds: Sequence[float]) -> list[Any]:
    """Legend entries for the threshold markers: the shape, in grey, whatever the segment."""
    return [
        ax.scatter([], [], marker=MARKERS[k % len(MARKERS)], c="grey", s=36, label=f"t = {t:g}")
        for k, t in enumerate(thresholds)
    ]


def _unstable(rows: pd.DataFrame) -> np.ndarray:
    """Segments with too few cases of a class for a stable AUC (the data warning's bound)."""
    if "n_pos" not in rows or "n_neg" not in rows:
        return np.zeros(len(rows), dtype=bool)
    few = np.minimum(rows.n_pos.to_numpy(float), rows.n_neg.to_numpy(float)) < MIN_POSITIVES
    return np.asarray(few & (rows.segment != GLOBAL).to_numpy(), dtype=bool)


FOREST_COLUMNS = 3  # panels a row of a forest figure
MAX_LABEL = 60  # characters of a name in a figure (the tables and report.json keep it whole)


def shorten_texts(fig: Figure, limit: int = MAX_LABEL) -> Figure:
    """Cut every text of a figure (ticks, legends, titles) longer than ``limit`` characters:
    a model or segment named with 100,000 characters made matplotlib lay out a page-long line
    and exhaust the memory."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        label = text.get_text()
        if len(label) > limit:
            text.set_text(label[: limit - 1] + "…")
    return fig


def short(name: Any, limit: int = MAX_LABEL) -> str:
    """A name as a figure shows it: cut at ``limit`` characters."""
    text = str(name)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_names(frame: pd.DataFrame | None) -> Any:
    """The frame with its name columns (model, segment, run) as figures show them: a long name
    never reaches matplotlib, whose text layout is what ran out of memory."""
    if frame is None or not len(frame):
        return frame
    columns = {c: frame[c].map(short) for c in ("model", "segment", "run") if c in frame}
    return frame.assign(**columns) if columns else frame


def to_data_uri(fig: Figure, dpi: int = 90) -> str:
    """Render a figure to an inline ``data:image/png;base64,...`` URI and close it."""
    shorten_texts(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def forest_rows(metrics: pd.DataFrame, by: str = "auc") -> tuple[pd.DataFrame, str]:
    """The rows a forest plot shows: all, or past MAX_FOREST_ROWS the global row and the
    segments of lowest and highest ``by`` (a metric); and a note saying which."""
    rows = metrics.reset_index(drop=True)
    if len(rows) <= MAX_FOREST_ROWS:
        return rows, ""
    whole = rows[rows.segment == GLOBAL]
    local = rows[rows.segment != GLOBAL].sort_values(by, kind="stable", na_position="first")
    shown = pd.concat([whole, local.head(FOREST_EXTREMES), local.tail(FOREST_EXTREMES)])
    note = (
        f"{len(local)} segments: the {FOREST_EXTREMES} lowest and highest "
        f"{get_metric(by).short} shown"
    )
    return shown.reset_index(drop=True), note


def draw_forest(
    ax: Any,
    metrics: pd.DataFrame,
    metric: str = "auc",
    *,
    baseline: pd.DataFrame | None = None,
    xlim: tuple[float, float] | None = None,
) -> Any:
    """``metric`` (a metric of the registry) with its CI, one row per segment, the whole set in
    black.

    A dashed line marks the global value; segments with fewer than MIN_POSITIVES cases of a
    class are drawn hollow and labelled unstable; ``baseline`` rows (same segments) are
    overlaid in grey just below.
    """
    rows = metrics.reset_index(drop=True)
    ypos = np.arange(len(rows))[::-1].astype(float)
    if baseline is not None and len(baseline):
        base = baseline.drop_duplicates("segment").set_index("segment").reindex(rows.segment)
        low = ypos - 0.3
        ax.hlines(low, base[f"{metric}_ci_low"], base[f"{metric}_ci_high"], colors="0.65")
        name = baseline.model.iloc[0] if "model" in baseline else ""
        ax.scatter(base[metric], low, c="0.65", s=12, zorder=2, label=f"baseline {name}")
    colors = np.array(["black" if s == GLOBAL else "tab:blue" for s in rows.segment])
    ax.hlines(
        ypos, rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"], colors=colors, linewidth=1.5
    )
    unstable = _unstable(rows)
    ax.scatter(rows[metric][~unstable], ypos[~unstable], c=colors[~unstable], s=18, zorder=3)
    if unstable.any():
        ax.scatter(
            rows[metric][unstable],
            ypos[unstable],
            facecolors="white",
            edgecolors=colors[unstable],
            s=24,
            zorder=3,
            label=f"unstable (< {MIN_POSITIVES} of a class)",
        )
    whole = rows[rows.segment == GLOBAL]
    if len(whole):
        ax.axvline(whole[metric].iloc[0], color="black", linestyle="--", linewidth=0.8)
    ax.set_xlabel(get_metric(metric).label)
    ax.grid(axis="x", alpha=0.3)
    names = [
        "global" if s == GLOBAL else f"{s} (unstable)" if bad else str(s)
        for s, bad in zip(rows.segment, unstable, strict=True)
    ]
    ax.set_yticks(ypos, names, fontsize=SMALL)
    if xlim is not None:
        ax.set_xlim(xlim)
    return ax


def forest_figure(
    metrics: pd.DataFrame,
    title: str,
    *,
    baseline: pd.DataFrame | None = None,
    xlims: dict[str, tuple[float, float]] | None = None,
    metrics_shown: Sequence[str] = ("auc", "wll"),
) -> Figure:
    """Each metric of ``metrics_shown`` with its CI, one panel per metric and one row per
    segment (the whole set in black, on top).

    ``xlims`` (metric -> limits) gives every model's figure the same axes; ``baseline``: the
    baseline model's metric rows, overlaid in grey.
    """
    rows, note = forest_rows(metrics)
    # At most FOREST_COLUMNS panels a row: eleven metrics side by side made each unreadable.
    n = len(metrics_shown)
    ncols = min(n, FOREST_COLUMNS)
    nrows = -(-n // ncols)
    height = min(1.2 + 0.32 * len(rows), 40)
    fig = _figure(figsize=(4.5 * max(ncols, 2), height * nrows))
    grid = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel())
    for ax, metric in zip(grid, metrics_shown, strict=False):
        draw_forest(ax, rows, metric, baseline=baseline, xlim=(xlims or {}).get(metric))
    for ax in grid[n:]:
        ax.set_axis_off()
    handles, labels = grid[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=SMALL, frameon=False)
    fig.suptitle(f"{title} ({note})" if note else title, fontsize=10, x=0.3)
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


def draw_roc(
    ax: Any,
    roc: pd.DataFrame,
    points: pd.DataFrame,
    title: str = "",
    *,
    aucs: dict[str, float] | None = None,
) -> Any:
    """ROC curves (global in black, one per segment) with the operating points marked.

    ``aucs`` (segment -> AUC) puts each curve's AUC in the legend.
    """
    aucs = aucs or {}

    def name(s: Any) -> str:
        label = "global" if s == GLOBAL else str(s)
        return f"{label}, AUC {aucs[s]:.3f}" if s in aucs else label

    segments = list(dict.fromkeys(roc.segment))
    colors = _colors(segments)
    local = [(s, c) for s, c in roc.groupby("segment", sort=False) if s != GLOBAL]
    _lines(
        ax,
        [(c.fpr.to_numpy(), c.tpr.to_numpy()) for _, c in local],
        [colors[s] for s, _ in local],
        [name(s) for s, _ in local],
        len(local),
        linewidth=1,
    )
    whole = roc[roc.segment == GLOBAL]
    ax.plot(whole.fpr, whole.tpr, label=name(GLOBAL), **GLOBAL_STYLE)
    thresholds = sorted(points.threshold.unique())
    for k, t in enumerate(thresholds):
        at = points[(points.threshold == t) & points.segment.isin(segments)]
        ax.scatter(
            at.fpr,
            at.tpr,
            marker=MARKERS[k % len(MARKERS)],
            s=36,
            zorder=6,
            c=["black" if s == GLOBAL else colors[s] for s in at.segment],
            edgecolors="black",
            linewidths=0.6,
        )
    _threshold_handles(ax, thresholds)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlabel="FPR", ylabel="TPR", xlim=(0, 1), ylim=(0, 1.01), title=title)
    _legend(ax, len(segments) + len(thresholds))
    return ax


def roc_figure(
    roc: pd.DataFrame,
    points: pd.DataFrame,
    title: str,
    *,
    aucs: dict[str, float] | None = None,
) -> Figure:
    """The report's ROC figure of one model (see :func:`draw_roc`)."""
    fig = _figure(figsize=(6, 6))
    draw_roc(fig.subplots(), roc, points, title, aucs=aucs)
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
    thresholds = sorted(local.threshold.unique())
    for k, t in enumerate(thresholds):
        at = local[local.threshold == t]
        ax.scatter(
            at.fpr,
            at.tpr,
            marker=MARKERS[k % len(MARKERS)],
            s=36,
            c=[colors[s] for s in at.segment],
            edgecolors="black",
            linewidths=0.6,
            zorder=3,
        )
    markers = _threshold_handles(ax, thresholds)
    ax.set(xlabel="FPR", ylabel="TPR", xlim=(0, 1), ylim=(0, 1.01), title="OPs per segment")
    if len(colors) <= MAX_LEGEND:
        ax.legend(fontsize=SMALL, loc="lower right", frameon=False)
    else:
        ax.legend(handles=markers, fontsize=SMALL, loc="lower right", frameon=False)
    return ax


def draw_op_spread(ax: Any, spread: pd.DataFrame) -> Any:
    """The spread of the OPs per threshold, with its CI (0 = synchronized)."""
    x = list(range(len(spread)))
    ax.bar(x, spread.spread, color="tab:orange", alpha=0.8)
    # The spread is a maximum, so its bootstrap distribution sits above it and the percentile
    # interval may not contain the estimate: draw the interval itself, not error bars around it.
    ax.vlines(x, spread.ci_low, spread.ci_high, color="black")
    ax.scatter(x * 2, [*spread.ci_low, *spread.ci_high], marker="_", s=120, color="black")
    for k in np.flatnonzero(spread.spread.isna().to_numpy()):
        ax.text(k, 0.05, "undefined", rotation=90, ha="center", va="bottom", fontsize=SMALL)
    ax.axhline(SQRT2, color="grey", linestyle=":", linewidth=0.8)
    ax.text(-0.45, SQRT2, "√2: opposite corners", va="bottom", fontsize=SMALL, color="0.3")
    ax.set_xticks(x, [f"t = {t:g}" for t in spread.threshold])
    ax.set_xlim(-0.5, len(spread) - 0.5)
    ax.set_ylim(0, SQRT2 * 1.1)
    ax.set(ylabel="spread (0 to √2)", title="spread with CI (0 = in sync)")
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
    """Score density of one label, one line per segment and the whole set in black, with a
    legend that names each colour's segment (up to MAX_LEGEND segments; past that, it says
    there is one colour a segment).

    With an ``n`` column, the legend gives each segment's n, and segments with fewer than
    MIN_POSITIVES images of the label are dashed and do not set the vertical scale.
    """
    segments = list(dict.fromkeys(hist.segment))
    colors = _colors(segments)
    mine = hist[hist.label == label]
    counts = mine.groupby("segment", sort=False).n.first() if "n" in mine else pd.Series()
    few = {s for s, n in counts.items() if n < MIN_POSITIVES and s != GLOBAL}

    def name(s: Any) -> str:
        shown = "global" if s == GLOBAL else str(s)
        return f"{shown} (n = {counts[s]})" if s in counts else shown

    local = [(s, g) for s, g in mine.groupby("segment", sort=False) if s != GLOBAL]
    for dashed in (False, True):
        part = [(s, g) for s, g in local if (s in few) == dashed]
        _lines(
            ax,
            [_steps(g) for _, g in part],
            [colors[s] for s, _ in part],
            [name(s) for s, _ in part],
            len(local),
            linewidth=1,
            linestyle="--" if dashed else "-",
        )
    ax.plot(*_steps(mine[mine.segment == GLOBAL]), label=name(GLOBAL), **GLOBAL_STYLE)
    _score_legend(ax, len(local), dashed=bool(few))
    title = "malignant (label 1)" if label == 1 else "benign (label 0)"
    ax.set(xlabel="score", ylabel="density", xlim=(0, 1), title=title)
    scale = mine[~mine.segment.isin(few)].density
    if len(scale) and np.isfinite(scale.max()) and scale.max() > 0:
        ax.set_ylim(0, 1.1 * scale.max())
    else:
        ax.autoscale_view()
    return ax


def _score_legend(ax: Any, n_segments: int, *, dashed: bool) -> None:
    """What the colours and line styles mean: a segment each (black: the whole set), dashed:
    too few images of the label for a stable curve."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    if dashed:
        handles.append(Line2D([], [], color="grey", linestyle="--", linewidth=1))
        labels.append(f"dashed: fewer than {MIN_POSITIVES} images")
    many = n_segments > MAX_LEGEND  # the segments' lines carry no label: too many to name
    title = f"colour: one of {n_segments} segments" if many else "colour: segment"
    # on a white box: the dashed lines of small segments run up to the top of the axes
    legend = ax.legend(handles, labels, title=title, fontsize=SMALL, title_fontsize=SMALL)
    legend.get_frame().set(facecolor="white", edgecolor="none", alpha=0.85)
    legend.set_zorder(10)  # above the whole set's black line


def score_figure(hist: pd.DataFrame, title: str) -> Figure:
    """Score densities by label (benign left, malignant right), one line per segment."""
    fig = _figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, label in zip(axes, (0, 1), strict=True):
        draw_scores(ax, hist, label)
    fig.suptitle(title, fontsize=10)
    return fig


def draw_training(ax: Any, training: pd.DataFrame, segment: str, metric: str) -> Any:
    """Validation ``metric`` ("wll" or "auc") over the steps on one segment, a line per run."""
    from matplotlib.ticker import MaxNLocator

    for run, rows in training[training.segment == segment].groupby("run", sort=True):
        rows = rows.sort_values("step")
        ax.plot(rows.step, rows[metric], label=run, linewidth=1.2)
    ax.set_title("global" if segment == GLOBAL else f"local {segment}", fontsize=9)
    ax.set_xlabel("step")
    # Few ticks, and no offset text ("1e-5+7.522e-1") drawn over the neighbouring label.
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.ticklabel_format(useOffset=False, style="plain")
    return ax


def undefined_reason(training: pd.DataFrame, segment: str) -> str | None:
    """Why a segment's validation metrics are undefined at every step, in a reviewer's words."""
    rows = training[training.segment == segment]
    if rows[["wll", "auc"]].notna().to_numpy().any():
        return None
    if "n_pos" in rows and (rows.n_pos == 0).all():
        return "its validation images are all benign: AUC and WLL need malignant ones too"
    if "n_neg" in rows and (rows.n_neg == 0).all():
        return "its validation images are all malignant: AUC and WLL need benign ones too"
    return "AUC and WLL are undefined at every validation step"


def training_figure(training: pd.DataFrame, columns: int = 4) -> Figure:
    """Validation WLL (above) and AUC (below) over the steps, for the whole set and every
    segment, ``columns`` segments a row; a segment with undefined metrics says why."""
    segments = [GLOBAL, *[s for s in dict.fromkeys(training.segment) if s != GLOBAL]]
    ncols = min(len(segments), columns)
    blocks = -(-len(segments) // ncols)
    fig = _figure(figsize=(3.3 * ncols, 5.2 * blocks), layout="constrained")
    axes = fig.subplots(2 * blocks, ncols, squeeze=False)
    for k in range(blocks * ncols):
        top, bottom = axes[2 * (k // ncols)][k % ncols], axes[2 * (k // ncols) + 1][k % ncols]
        if k >= len(segments):
            top.set_visible(False)
            bottom.set_visible(False)
            continue
        segment = segments[k]
        reason = undefined_reason(training, segment)
        if reason:
            bottom.set_visible(False)
            top.axis("off")
            name = "global" if segment == GLOBAL else f"local {segment}"
            top.set_title(name, fontsize=9)
            top.text(
                0.5,
                0.5,
                f"undefined:\n{_wrap(reason)}",
                ha="center",
                va="center",
                fontsize=SMALL,
                transform=top.transAxes,
            )
            continue
        draw_training(top, training, segment, "wll")
        draw_training(bottom, training, segment, "auc")
        top.set_xlabel("")
        if k % ncols == 0:
            top.set_ylabel("validation WLL / image")
            bottom.set_ylabel("validation AUC")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncols=6, fontsize=SMALL)
    return fig


def _wrap(text: str, width: int = 28) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
