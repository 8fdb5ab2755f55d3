"""Point metrics at operating points and of calibration, scikit-learn style.

``f(y_true, y_score, *, <parameter>, sample_weight=None)``: each validates its inputs once, builds
the kernel of :mod:`segeval._op_kernels` (the one the bootstrap evaluates for every resample) and
evaluates it for the sample weights. A statistic that is undefined on the data warns with
:class:`~segeval.validation.UndefinedMetricWarning`, saying why, and returns NaN.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from segeval._op_kernels import (
    CalibrationInTheLarge,
    CalibrationSlope,
    NPVAtThreshold,
    PPVAtThreshold,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    _Kernel,
)
from segeval.metrics import DEFAULT_EPS, _check_binary_inputs
from segeval.validation import warn_undefined

__all__ = [
    "calibration_in_the_large",
    "calibration_slope",
    "npv",
    "ppv",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
]


def _value_or_warn(kernel: _Kernel, w: NDArray[np.float64]) -> float:
    value = kernel(w)
    if np.isnan(value):
        reason = kernel.reason(w)
        assert reason is not None, "a kernel gives a reason for every NaN"
        return warn_undefined(reason)
    return value


def sensitivity_at_specificity(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    level: float,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Largest sensitivity (TPR) over thresholds whose specificity (TNR) is at least ``level``.

    An image is predicted positive iff ``score >= t``; ``t`` ranges over every distinct score and
    ``+inf``. A threshold qualifies iff ``FP <= (1 - level) * N_neg`` up to a relative ``1e-12``,
    so that ten negatives at ``level=0.9`` allow exactly one false positive.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Labels in {0, 1}.
    y_score : array-like of shape (n,)
        Scores; higher means more likely positive.
    level : float
        Required specificity, strictly between 0 and 1.
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights; counts become sums of weights.

    Returns
    -------
    float
        The sensitivity, or NaN (with a warning) when a class is absent.

    Examples
    --------
    >>> sensitivity_at_specificity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.6, 0.9], level=0.75)
    1.0
    """
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=False)
    return _value_or_warn(SensitivityAtSpecificity(y, s, level=level), w)


def specificity_at_sensitivity(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    level: float,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Largest specificity (TNR) over thresholds whose sensitivity (TPR) is at least ``level``.

    The mirror image of :func:`sensitivity_at_specificity`: a threshold qualifies iff
    ``TP >= level * N_pos`` up to a relative ``1e-12``.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Labels in {0, 1}.
    y_score : array-like of shape (n,)
        Scores; higher means more likely positive.
    level : float
        Required sensitivity, strictly between 0 and 1.
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights.

    Returns
    -------
    float
        The specificity, or NaN (with a warning) when a class is absent.

    Examples
    --------
    >>> specificity_at_sensitivity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.6, 0.9], level=0.5)
    1.0
    """
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=False)
    return _value_or_warn(SpecificityAtSensitivity(y, s, level=level), w)


def ppv(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    threshold: float,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Positive predictive value (precision) predicting positive iff ``score >= threshold``.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Labels in {0, 1}.
    y_score : array-like of shape (n,)
        Scores.
    threshold : float
        Finite decision threshold.
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights.

    Returns
    -------
    float
        Weight of the positives among images scoring at or above ``threshold``, or NaN (with a
        warning) when no image (of positive weight) does.

    Examples
    --------
    >>> ppv([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], threshold=0.5)  # doctest: +ELLIPSIS
    0.666...
    """
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=False)
    return _value_or_warn(PPVAtThreshold(y, s, threshold=threshold), w)


def npv(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    threshold: float,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Negative predictive value predicting negative iff ``score < threshold``.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Labels in {0, 1}.
    y_score : array-like of shape (n,)
        Scores.
    threshold : float
        Finite decision threshold.
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights.

    Returns
    -------
    float
        Weight of the negatives among images scoring below ``threshold``, or NaN (with a
        warning) when no image (of positive weight) does.

    Examples
    --------
    >>> npv([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    0.5
    """
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=False)
    return _value_or_warn(NPVAtThreshold(y, s, threshold=threshold), w)


def calibration_slope(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
) -> float:
    """Calibration slope: ``b`` of the logistic fit ``logit P(y=1) = a + b logit(p)``; ideal 1.

    Below 1, predicted risks are too extreme (typical of overfitting); above 1, too modest. See
    :mod:`segeval._op_kernels` for why this and calibration-in-the-large rather than ECE.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Labels in {0, 1}.
    y_score : array-like of shape (n,)
        Predicted probability of label 1, in [0, 1].
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights (a weighted likelihood).
    eps : float, default 1e-15
        Probabilities are clipped to ``[eps, 1 - eps]`` before the logit.

    Returns
    -------
    float
        The slope, or NaN (with a warning) when a class is absent or the scores separate the
        classes (the maximum-likelihood slope is then infinite).

    Examples
    --------
    >>> y = [0, 0, 1, 0, 1, 1]
    >>> round(calibration_slope(y, [0.1, 0.3, 0.4, 0.6, 0.7, 0.9]), 6)
    1.504792
    """
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=True)
    return _value_or_warn(CalibrationSlope(y, s, eps=eps), w)


def calibration_in_the_large(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
) -> float:
    """Calibration-in-the-large: ``a`` of the logistic fit ``logit P(y=1) = a + logit(p)``; ideal 0.

    The slope is fixed at 1 (``logit(p)`` is an offset), so ``a`` is the shift of the log-odds
    that makes the mean predicted risk match the observed one: below 0, risks are too high on
    average; above 0, too low.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Labels in {0, 1}.
    y_score : array-like of shape (n,)
        Predicted probability of label 1, in [0, 1].
    sample_weight : array-like of shape (n,), optional
        Non-negative row weights.
    eps : float, default 1e-15
        Probabilities are clipped to ``[eps, 1 - eps]`` before the logit.

    Returns
    -------
    float
        The intercept, or NaN (with a warning) when a class is absent.

    Examples
    --------
    >>> round(calibration_in_the_large([0, 1], [0.5, 0.5]), 12)
    0.0
    >>> calibration_in_the_large([0, 0, 0, 1], [0.5, 0.5, 0.5, 0.5])  # doctest: +ELLIPSIS
    -1.0986...
    """
    y, s, w = _check_binary_inputs(y_true, y_score, sample_weight, probability=True)
    return _value_or_warn(CalibrationInTheLarge(y, s, eps=eps), w)
