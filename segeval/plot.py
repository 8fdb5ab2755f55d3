"""Plots for notebooks: each function takes an :class:`~segeval.Evaluation` (or the frame it
draws) and ``ax=None``, draws on ``ax`` (a new figure when None) and returns the Axes.

Nothing here computes a statistic, and nothing chooses a matplotlib backend: the figures go where
the user's matplotlib sends them. Example::

    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2)
    segeval.plot.forest(ev, model="periodic", ax=left)
    segeval.plot.roc(ev, model="periodic", ax=right)
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from segeval import plots
from segeval.evaluation import Evaluation
from segeval.segments import GLOBAL
from segeval.validation import InputError

__all__ = ["forest", "op_points", "op_spread", "roc", "scores", "training"]


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots()[1]


def _rows(data: Evaluation | pd.DataFrame, table: str, model: str | None) -> pd.DataFrame:
    """The rows of one model from ``data.<table>`` (or from the frame given), with the names as
    figures show them (:func:`segeval.plots.short_names`)."""
    return plots.short_names(_model_rows(data, table, model))  # type: ignore[no-any-return]


def _model_rows(data: Evaluation | pd.DataFrame, table: str, model: str | None) -> pd.DataFrame:
    frame = getattr(data, table) if isinstance(data, Evaluation) else data
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"Expected an Evaluation or a DataFrame; got {type(data).__name__}.")
    if "model" not in frame.columns:
        return frame
    models = list(dict.fromkeys(frame["model"]))
    if model is None:
        if len(models) > 1:
            raise InputError(f"Give model=, one of {', '.join(map(str, models))}.")
        return frame
    if model not in models:
        raise InputError(f"Unknown model {model!r}; the models are {', '.join(map(str, models))}.")
    return frame[frame["model"] == model]


def forest(
    data: Evaluation | pd.DataFrame,
    *,
    model: str | None = None,
    metric: str = "auc",
    ax: Any = None,
) -> Any:
    """``metric`` (one evaluated, e.g. "auc", "wll", "sens@spec=0.9") with its CI per segment:
    a forest plot of ``metrics``.

    Past 60 segments only the whole set and the 25 segments of lowest and highest values of the
    metric are drawn.
    """
    frame = _rows(data, "metrics", model)
    evaluated = [c[: -len("_ci_low")] for c in frame.columns if str(c).endswith("_ci_low")]
    if metric not in evaluated:
        raise InputError(
            f"metric must be one of the evaluated metrics, {', '.join(evaluated)}; got {metric!r}."
        )
    rows, note = plots.forest_rows(frame.dropna(subset=[metric]), by=metric)
    ax = plots.draw_forest(_axes(ax), rows, metric)
    if note:
        ax.set_title(note, fontsize=8)
    return ax


def roc(
    data: Evaluation | pd.DataFrame,
    *,
    model: str | None = None,
    ax: Any = None,
) -> Any:
    """ROC curves, global and per segment; with an Evaluation, the operating points too."""
    curves = _rows(data, "roc", model)
    points = (
        _rows(data, "op_points", model)
        if isinstance(data, Evaluation)
        else pd.DataFrame(columns=["segment", "threshold", "fpr", "tpr"])
    )
    return plots.draw_roc(_axes(ax), curves, points, plots.short(model or ""))


def op_points(data: Evaluation | pd.DataFrame, *, model: str | None = None, ax: Any = None) -> Any:
    """Each segment's operating points at the thresholds (OP synchronization)."""
    return plots.draw_op_points(_axes(ax), _rows(data, "op_points", model))


def op_spread(data: Evaluation | pd.DataFrame, *, model: str | None = None, ax: Any = None) -> Any:
    """The spread of the segments' operating points per threshold, with its CI."""
    return plots.draw_op_spread(_axes(ax), _rows(data, "op_spread", model))


def scores(
    data: Evaluation | pd.DataFrame, *, model: str | None = None, label: int = 1, ax: Any = None
) -> Any:
    """Score densities of one label (1: malignant, 0: benign), per segment and global."""
    return plots.draw_scores(_axes(ax), _rows(data, "score_hist", model), label)


def training(
    data: Evaluation | pd.DataFrame,
    *,
    segment: str = GLOBAL,
    metric: str = "wll",
    ax: Any = None,
) -> Any:
    """Validation ``metric`` ("wll" or "auc") of the training runs over the steps."""
    frame = data.training if isinstance(data, Evaluation) else data
    ax = plots.draw_training(_axes(ax), frame, segment, metric)
    if ax.get_legend_handles_labels()[0]:  # no training run drew a line: no legend to show
        ax.legend(fontsize=7, frameon=False)
    return ax
