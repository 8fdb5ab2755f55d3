"""Point metrics: weighted log loss, ROC AUC, ROC curve, operating points.

Pure functions over numpy arrays, ``f(y_true, y_score, *, sample_weight=None, ...)``. A statistic
that is undefined on the data (one class only) warns with :class:`UndefinedMetricWarning` and
returns NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from segeval._kernels import AUCKernel, WLLKernel
from segeval.validation import (
    InputError,
    check_consistent_length,
    check_labels,
    check_sample_weight,
    check_scores,
    one_class_reason,
    warn_undefined,
)

DEFAULT_EPS = 1e-15
DEFAULT_THRESHOLDS = (0.2, 0.4, 0.6, 0.8)


def _check_binary_inputs(
    y_true: ArrayLike,
    y_score: ArrayLike,
    sample_weight: ArrayLike | None,
    *,
    probability: bool,
) -> tuple[NDArray[np.int8], NDArray[np.float64], NDArray[np.float64]]:
    y = check_labels(y_true)
    s = check_scores(y_score, probability=probability)
    check_consistent_length(("y_true", y.size), ("y_score", s.size))
    w = check_sample_weight(sample_weight, y.size)
    return y, s, np.ones(y.size) if w is None else w


def weighted_log_loss(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
) -> float:
    """Log loss with class weights estimated on the evaluated set (the paper's WLL / image).

    Positives are weighted ``1 / (2 n_pos)`` and negatives ``1 / (2 n_neg)``, so the result is half
    the mean loss of the positives plus half the mean loss of the negatives, independent of
    prevalence. With ``sample_weight``, counts become sums of weights.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Labels in {0, 1}.
    y_score : array-like of shape (n,)
        Predicted probability of label 1, in [0, 1].
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights.
    eps : float, default 1e-15
        Probabilities are clipped to ``[eps, 1 - eps]``.

    Returns
    -------
    float
        The WLL per image, or NaN (with a warning) when a class is absent.

    Examples
    --------
    >>> weighted_log_loss([0, 0, 0, 1], [0.5, 0.5, 0.5, 0.5])  # doctest: +ELLIPSIS
    0.693...
    """
    if not 0 < eps < 0.5:
        raise InputError(f"eps must be in (0, 0.5); got {eps!r}.")
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=True)
    reason = one_class_reason(y, "Weighted log loss", w)
    if reason:
        return warn_undefined(reason)
    return WLLKernel(y, s, eps)(w)


def roc_auc(
    y_true: ArrayLike, y_score: ArrayLike, *, sample_weight: ArrayLike | None = None
) -> float:
    """Area under the ROC curve by Mann-Whitney, ties counting 1/2; O(n log n).

    Equals :func:`sklearn.metrics.roc_auc_score` (with the same ``sample_weight``).

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=False)
    reason = one_class_reason(y, "ROC AUC", w)
    if reason:
        return warn_undefined(reason)
    return AUCKernel(y, s)(w)


@dataclass(frozen=True)
class ROCCurve:
    """False and true positive rates at every distinct score threshold (decreasing)."""

    fpr: NDArray[np.float64]
    tpr: NDArray[np.float64]
    thresholds: NDArray[np.float64]


def roc_curve(
    y_true: ArrayLike, y_score: ArrayLike, *, sample_weight: ArrayLike | None = None
) -> ROCCurve:
    """ROC curve at every distinct score, predicting positive iff ``score >= threshold``.

    The first point is (0, 0) at threshold ``+inf``, as in scikit-learn with
    ``drop_intermediate=False``. Rates of an absent class are NaN, with a warning.
    """
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=False)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tp = np.cumsum(w[order] * y[order])
    fp = np.cumsum(w[order] * (1 - y[order]))
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tp = np.r_[0.0, tp[last_of_tie]]
    fp = np.r_[0.0, fp[last_of_tie]]
    thresholds = np.r_[np.inf, s_sorted[last_of_tie]]
    return ROCCurve(
        fpr=_rate(fp, fp[-1], "negative", "FPR"),
        tpr=_rate(tp, tp[-1], "positive", "TPR"),
        thresholds=thresholds,
    )


def _rate(counts: NDArray[np.float64], total: float, cls: str, what: str) -> NDArray[np.float64]:
    """counts / total, or NaN with a warning when the class is absent."""
    if total <= 0:
        warn_undefined(f"No {cls} samples in y_true; {what} is not defined in that case.")
        return np.full(counts.size, np.nan)
    return np.asarray(counts / total, dtype=np.float64)


@dataclass(frozen=True)
class OperatingPoints:
    """(FPR, TPR) at fixed thresholds, predicting positive iff ``score >= threshold``."""

    thresholds: NDArray[np.float64]
    fpr: NDArray[np.float64]
    tpr: NDArray[np.float64]

    def to_frame(self) -> pd.DataFrame:
        """One row per threshold: threshold, fpr, tpr."""
        return pd.DataFrame({"threshold": self.thresholds, "fpr": self.fpr, "tpr": self.tpr})


def check_thresholds(thresholds: Sequence[float] | ArrayLike) -> NDArray[np.float64]:
    """Thresholds as a sorted float array of unique finite values."""
    if isinstance(thresholds, (str, bytes)):
        raise InputError(
            f"thresholds must be a list of numbers, e.g. [0.2, 0.4]; got the text {thresholds!r}."
        )
    try:
        t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"thresholds must be a non-empty list of finite numbers; got {thresholds!r}."
        ) from exc
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all():
        raise InputError(
            f"thresholds must be a non-empty list of finite numbers; got {thresholds!r}."
        )
    if np.unique(t).size != t.size:
        raise InputError(f"thresholds must be distinct; got {thresholds!r}.")
    return t


def operating_points(
    y_true: ArrayLike,
    y_score: ArrayLike,
    thresholds: Sequence[float] | ArrayLike = DEFAULT_THRESHOLDS,
    *,
    sample_weight: ArrayLike | None = None,
) -> OperatingPoints:
    """Operating points (FPR, TPR) at the given thresholds.

    Examples
    --------
    >>> op = operating_points([0, 0, 1, 1], [0.1, 0.5, 0.3, 0.9], thresholds=[0.2, 0.6])
    >>> op.fpr.tolist(), op.tpr.tolist()
    ([0.5, 0.0], [1.0, 0.5])
    """
    t = check_thresholds(thresholds)
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=False)
    above = s[:, None] >= t[None, :]
    tp = (w * y) @ above
    fp = (w * (1 - y)) @ above
    return OperatingPoints(
        thresholds=t,
        fpr=_rate(fp, float((w * (1 - y)).sum()), "negative", "FPR"),
        tpr=_rate(tp, float((w * y).sum()), "positive", "TPR"),
    )
