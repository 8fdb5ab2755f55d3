"""Rank once, evaluate many times.

A kernel is built once from (labels, scores) and then evaluates its statistic for any vector of
non-negative row weights. A plain metric uses the sample weights (or ones); a bootstrap resample
uses the number of times each row was drawn. That single mechanism is why the bootstrap never
calls an AUC routine per resample: the sort happens here, once, and each resample costs a gather,
a cumulative sum and a dot product.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Weights = NDArray[np.float64] | NDArray[np.int64]


class AUCKernel:
    """Weighted Mann-Whitney AUC (ties count 1/2) for fixed labels and scores.

    For each positive, the number of negatives strictly below it (``lo``) and at or below it
    (``hi``) is found once by binary search in the sorted negatives. Given row weights ``w``::

        CN[k] = total weight of the k lowest-scored negatives
        AUC   = sum_pos w_i * (CN[lo_i] + CN[hi_i]) / 2  /  (W_pos * W_neg)

    which is the probability that a positive outscores a negative, ties counting one half.
    """

    def __init__(self, y_true: NDArray[np.int8], y_score: NDArray[np.float64]) -> None:
        pos = np.flatnonzero(y_true == 1)
        neg = np.flatnonzero(y_true == 0)
        neg = neg[np.argsort(y_score[neg], kind="stable")]
        sorted_neg = y_score[neg]
        self.pos = pos
        self.neg_sorted = neg
        self.lo = np.searchsorted(sorted_neg, y_score[pos], side="left")
        hi = np.searchsorted(sorted_neg, y_score[pos], side="right")
        # Without ties between classes, lo == hi and one gather suffices.
        self.hi = None if np.array_equal(self.lo, hi) else hi

    def __call__(self, w: Weights) -> float:
        wn = w[self.neg_sorted]
        cn = np.empty(wn.size + 1, dtype=wn.dtype)
        cn[0] = 0
        np.cumsum(wn, out=cn[1:])
        wp = w[self.pos]
        w_pos = wp.sum()
        w_neg = cn[-1]
        if w_pos == 0 or w_neg == 0:
            return float("nan")
        below = cn[self.lo]
        if self.hi is None:
            num = float(np.dot(wp, below))
        else:
            num = 0.5 * float(np.dot(wp, below + cn[self.hi]))
        return num / (float(w_pos) * float(w_neg))


class WLLKernel:
    """Weighted log loss with class weights 1/(2 W_pos), 1/(2 W_neg) estimated on the weights.

    Equals one half of the mean loss of the positives plus one half of the mean loss of the
    negatives, each mean weighted by ``w``.
    """

    def __init__(self, y_true: NDArray[np.int8], y_score: NDArray[np.float64], eps: float) -> None:
        p = np.clip(y_score, eps, 1.0 - eps)
        self.pos = np.flatnonzero(y_true == 1)
        self.neg = np.flatnonzero(y_true == 0)
        self.loss_pos = -np.log(p[self.pos])
        self.loss_neg = -np.log1p(-p[self.neg])

    def __call__(self, w: Weights) -> float:
        wp = w[self.pos]
        wn = w[self.neg]
        w_pos = float(wp.sum())
        w_neg = float(wn.sum())
        if w_pos == 0 or w_neg == 0:
            return float("nan")
        return 0.5 * (
            float(np.dot(wp, self.loss_pos)) / w_pos + float(np.dot(wn, self.loss_neg)) / w_neg
        )
