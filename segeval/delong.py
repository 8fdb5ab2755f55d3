"""DeLong's variance of AUC and paired test, by the fast algorithm of Sun & Xu (2014).

The structural components of DeLong et al. (1988) are obtained from midranks in O(n log n)
instead of the O(n_pos * n_neg) pairwise comparisons:

    V10_i = (R_i - R+_i) / n_neg      for each positive i
    V01_j = 1 - (R_j - R-_j) / n_pos  for each negative j

with R the midrank among all cases and R+, R- the midrank within the case's own class.

AUC = mean(V10) = mean(V01); the covariance of the AUCs of several models on the same cases is
``S10 / n_pos + S01 / n_neg`` with S10, S01 the sample covariance matrices of the components.

References
----------
DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44:837-845.
Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under correlated
receiver operating characteristic curves. IEEE Signal Processing Letters 2014;21(11):1389-1393.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm, rankdata

from segeval.validation import (
    check_consistent_length,
    check_labels,
    check_level,
    check_scores,
    one_class_reason,
    readable_repr,
    warn_undefined,
)


def structural_components(
    y: NDArray[np.int8], scores: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """DeLong's V10 (one row per model, one column per positive) and V01 (per negative).

    ``scores`` has shape (k, n) for k models.
    """
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    x, z = scores[:, pos], scores[:, neg]
    r_all = rankdata(np.concatenate([x, z], axis=1), axis=1)
    r_x = rankdata(x, axis=1)
    r_z = rankdata(z, axis=1)
    v10 = (r_all[:, :m] - r_x) / n
    v01 = 1.0 - (r_all[:, m:] - r_z) / m
    return v10, v01


def _covariance(v10: NDArray[np.float64], v01: NDArray[np.float64]) -> NDArray[np.float64]:
    s10 = np.atleast_2d(np.cov(v10, ddof=1)) if v10.shape[1] > 1 else np.zeros((len(v10),) * 2)
    s01 = np.atleast_2d(np.cov(v01, ddof=1)) if v01.shape[1] > 1 else np.zeros((len(v01),) * 2)
    return np.asarray(s10 / v10.shape[1] + s01 / v01.shape[1], dtype=np.float64)


@dataclass(frozen=True, repr=False)
class DeLongAUCResult:
    """AUC with DeLong's standard error and normal confidence interval (clipped to [0, 1])."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    ci: float

    def __repr__(self) -> str:
        return readable_repr(self)


@dataclass(frozen=True, repr=False)
class DeLongTestResult:
    """DeLong's paired test of ΔAUC = AUC(b) − AUC(a) on the same cases."""

    auc_a: float
    auc_b: float
    delta: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    ci: float

    def __repr__(self) -> str:
        return readable_repr(self)


def _prepare(
    y_true: ArrayLike, *scores: tuple[str, ArrayLike]
) -> tuple[NDArray[np.int8], NDArray[np.float64], str | None]:
    y = check_labels(y_true)
    arrays = [check_scores(s, name) for name, s in scores]
    check_consistent_length(
        ("y_true", y.size), *((name, a.size) for (name, _), a in zip(scores, arrays, strict=True))
    )
    reason = one_class_reason(y, "DeLong's AUC variance") or _too_few_reason(y)
    return y, np.vstack(arrays), reason


def _too_few_reason(y: NDArray[np.int8]) -> str | None:
    """DeLong's variance estimates a covariance within each class: one case gives none.

    With a single positive (or negative) its component has no spread, the variance term of that
    class is silently zero and the standard error too small (pROC returns NA).
    """
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos >= 2 and n_neg >= 2:
        return None
    return (
        f"DeLong's AUC variance needs at least two positives and two negatives; got {n_pos} "
        f"positive(s) and {n_neg} negative(s). It is not defined in that case."
    )


def delong_auc_ci(y_true: ArrayLike, y_score: ArrayLike, *, ci: float = 0.95) -> DeLongAUCResult:
    """AUC with DeLong's variance and a normal CI (as pROC's ``ci.auc(method="delong")``).

    Examples
    --------
    >>> r = delong_auc_ci([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.7, 0.6, 0.65, 0.9])
    >>> round(r.auc, 4), round(r.se, 4)
    (0.8889, 0.1571)
    """
    ci = check_level(ci)
    y, s, reason = _prepare(y_true, ("y_score", y_score))
    if reason:
        nan = warn_undefined(reason)
        return DeLongAUCResult(nan, nan, nan, nan, ci)
    v10, v01 = structural_components(y, s)
    auc = float(v10.mean())
    se = float(np.sqrt(_covariance(v10, v01)[0, 0]))
    half = norm.ppf((1 + ci) / 2) * se
    return DeLongAUCResult(auc, se, max(0.0, auc - half), min(1.0, auc + half), ci)


def delong_delta_auc_test(
    y_true: ArrayLike, score_a: ArrayLike, score_b: ArrayLike, *, ci: float = 0.95
) -> DeLongTestResult:
    """DeLong's test of two correlated AUCs (pROC's ``roc.test(method="delong", paired=TRUE)``).

    ``z = Δ / SE(Δ)``, ``p = 2Φ(−|z|)``; the CI is ``Δ ± z_(1+ci)/2 · SE``. When both models rank
    the cases identically SE is 0: p is 1 (NaN z).

    Examples
    --------
    >>> y = [0, 0, 0, 1, 1, 1, 0, 1]
    >>> a = [.2, .6, .3, .4, .7, .5, .1, .8]
    >>> b = [.1, .2, .3, .7, .8, .6, .4, .9]
    >>> r = delong_delta_auc_test(y, a, b)
    >>> round(r.delta, 4), round(r.p_value, 3)
    (0.125, 0.386)
    """
    ci = check_level(ci)
    y, s, reason = _prepare(y_true, ("score_a", score_a), ("score_b", score_b))
    if reason:
        nan = warn_undefined(reason)
        return DeLongTestResult(nan, nan, nan, nan, nan, nan, nan, nan, ci)
    v10, v01 = structural_components(y, s)
    auc_a, auc_b = (float(v) for v in v10.mean(axis=1))
    cov = _covariance(v10, v01)
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    delta = auc_b - auc_a
    if se == 0:
        z, p = float("nan"), 1.0 if delta == 0 else 0.0
    else:
        z = delta / se
        p = float(2 * norm.sf(abs(z)))
    half = norm.ppf((1 + ci) / 2) * se
    return DeLongTestResult(auc_a, auc_b, delta, se, z, p, delta - half, delta + half, ci)
