"""Rank once, evaluate many times.

A kernel is built once from (labels, scores) and then evaluates its statistic for any vector of
non-negative row weights. A plain metric uses the sample weights (or ones); a bootstrap resample
uses the number of times each row was drawn. That single mechanism is why the bootstrap never
calls an AUC routine per resample: the sort happens here, once, and each resample costs a gather,
a cumulative sum and a dot product.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from segeval.segments import Segments

Weights = NDArray[np.float64]
# Above this many rows of a label, the leakage null is drawn from its normal limit (exact
# permutations cost a pass over the rows each: 200 of 190,000 rows took seconds).
EXACT_NULL_MAX_ROWS = 20_000
# Exact sums: log losses rounded to multiples of 2^-24, so that with integer weights every partial
# sum is a multiple of 2^-24 below 2^29 (53 bits), exactly representable: the sum is the same in
# any order and over any partitioning (while the weighted loss of a class stays below 2^29).
EXACT_LOSS_STEP = 2.0**-24


class AUCKernel:
    """Weighted Mann-Whitney AUC (ties count 1/2) for fixed labels and scores.

    Let S be the smaller class and B the larger. Once, for every row of B, binary search in the
    sorted scores of S gives ``lo`` (rows of S scored strictly below) and ``hi`` (at or below).
    Then, for row weights ``w``, with ``CS[k]`` the weight of the k lowest-scored rows of S::

        Q = sum over rows j of B of  w_j * (CS[lo_j] + CS[hi_j]) / 2

    is the weighted count of (S, B) pairs ordered S < B, ties counting one half. If S holds the
    negatives, Q is the Mann-Whitney numerator; if it holds the positives, the numerator is
    ``W_S * W_B - Q``. AUC = numerator / (W_pos * W_neg).

    Per evaluation this costs a cumulative sum over S, one gather from that small array for every
    row, and dot products: no sort, and the large class is never cumulated.
    """

    def __init__(self, y_true: NDArray[np.int8], y_score: NDArray[np.float64]) -> None:
        n_pos = int(y_true.sum())
        self.small_is_pos = n_pos <= y_true.size - n_pos
        small_mask = y_true == (1 if self.small_is_pos else 0)
        small = np.flatnonzero(small_mask)
        self.small_sorted = small[np.argsort(y_score[small], kind="stable")]
        sorted_scores = y_score[self.small_sorted]
        lo = np.searchsorted(sorted_scores, y_score, side="left")
        hi = np.searchsorted(sorted_scores, y_score, side="right")
        # Rows of S point at CS[0] = 0 so that a dot product over all rows only counts B.
        lo[small_mask] = 0
        hi[small_mask] = 0
        self.lo = lo
        # Only rows of B tied with some row of S need the (hi - lo) half-correction.
        self.tied = np.flatnonzero(hi != lo)
        self.tied_lo = lo[self.tied]
        self.tied_hi = hi[self.tied]

    def __call__(self, w: Weights, total: float | None = None) -> float:
        """AUC for row weights ``w`` (``total`` = ``w.sum()`` when the caller already knows it)."""
        cs = np.empty(self.small_sorted.size + 1)
        cs[0] = 0.0
        np.cumsum(w[self.small_sorted], out=cs[1:])
        w_small = float(cs[-1])
        w_big = (float(w.sum()) if total is None else total) - w_small
        if w_small <= 0 or w_big <= 0:
            return float("nan")
        # take(mode="clip") skips the bounds check of fancy indexing: lo is valid by construction.
        q = float(np.dot(w, np.take(cs, self.lo, mode="clip")))
        if self.tied.size:
            half = cs[self.tied_hi] - cs[self.tied_lo]
            q += 0.5 * float(np.dot(w[self.tied], half))
        numerator = w_small * w_big - q if self.small_is_pos else q
        return numerator / (w_small * w_big)

    def batch(self, w: NDArray[np.float64], totals: NDArray[np.float64]) -> NDArray[np.float64]:
        """AUC for each row of a (B, n) weight matrix at once (small data, many resamples)."""
        cs = np.zeros((w.shape[0], self.small_sorted.size + 1))
        np.cumsum(w[:, self.small_sorted], axis=1, out=cs[:, 1:])
        w_small = cs[:, -1]
        w_big = totals - w_small
        q = np.einsum("ij,ij->i", w, np.take(cs, self.lo, axis=1))
        if self.tied.size:
            half = cs[:, self.tied_hi] - cs[:, self.tied_lo]
            q += 0.5 * np.einsum("ij,ij->i", w[:, self.tied], half)
        numerator = w_small * w_big - q if self.small_is_pos else q
        return _undefined_where(numerator, w_small * w_big, (w_small <= 0) | (w_big <= 0))


class WLLKernel:
    """Weighted log loss with class weights 1/(2 W_pos), 1/(2 W_neg) estimated on the weights.

    Equals one half of the mean loss of the positives plus one half of the mean loss of the
    negatives, each mean weighted by ``w``. Losses are stored over all rows (zero for the other
    class) so each evaluation is a handful of dot products.

    With ``exact=True`` the losses are rounded to multiples of :data:`EXACT_LOSS_STEP` (an error
    below 3e-8 on the WLL) so that integer-weighted sums are exact, hence independent of the
    order and partitioning of the rows (Poisson resampling, :mod:`segeval.distributed`).
    """

    def __init__(
        self,
        y_true: NDArray[np.int8],
        y_score: NDArray[np.float64],
        eps: float,
        *,
        exact: bool = False,
    ) -> None:
        p = np.clip(y_score, eps, 1.0 - eps)
        is_pos = y_true == 1
        self.pos_indicator = is_pos.astype(np.float64)
        self.loss_pos = np.where(is_pos, -np.log(p), 0.0)
        self.loss_neg = np.where(is_pos, 0.0, -np.log1p(-p))
        if exact:
            self.loss_pos = exact_losses(self.loss_pos)
            self.loss_neg = exact_losses(self.loss_neg)

    def __call__(self, w: Weights, total: float | None = None) -> float:
        """WLL for row weights ``w`` (``total`` = ``w.sum()`` when the caller already knows it)."""
        w_pos = float(np.dot(w, self.pos_indicator))
        w_neg = (float(w.sum()) if total is None else total) - w_pos
        if w_pos <= 0 or w_neg <= 0:
            return float("nan")
        return 0.5 * (
            float(np.dot(w, self.loss_pos)) / w_pos + float(np.dot(w, self.loss_neg)) / w_neg
        )

    def batch(self, w: NDArray[np.float64], totals: NDArray[np.float64]) -> NDArray[np.float64]:
        """WLL for each row of a (B, n) weight matrix at once (small data, many resamples)."""
        w_pos = w @ self.pos_indicator
        return wll_value(w @ self.loss_pos, w @ self.loss_neg, w_pos, totals - w_pos)


def exact_losses(loss: NDArray[np.float64]) -> NDArray[np.float64]:
    """Losses rounded to multiples of :data:`EXACT_LOSS_STEP` (see :class:`WLLKernel`)."""
    return np.round(loss / EXACT_LOSS_STEP) * EXACT_LOSS_STEP


def wll_value(
    loss_pos: NDArray[np.float64] | float,
    loss_neg: NDArray[np.float64] | float,
    w_pos: NDArray[np.float64] | float,
    w_neg: NDArray[np.float64] | float,
) -> NDArray[np.float64]:
    """WLL from weighted loss sums and class weights, NaN where a class has no weight: the
    last step of :meth:`WLLKernel.batch`, shared with the distributed merge."""
    undefined = (np.asarray(w_pos) <= 0) | (np.asarray(w_neg) <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 0.5 * (np.asarray(loss_pos) / w_pos + np.asarray(loss_neg) / w_neg)
    return _undefined_where(value, np.ones_like(value), undefined)


class OneVsRestAUC:
    """For one label, the AUC of each segment against the other segments by score.

    The segment leakage kernel (:mod:`segeval.leakage`): called with row weights of the whole
    set, it returns one AUC per segment holding images of the label (NaN where a resample leaves
    the segment or the rest empty). One cumulative sum in score order gives every image the
    weight of the images of the label scored below it (ties one half); summed per segment that
    is the segment against all images of the label, itself included, and the segment against
    itself always contributes W²/2, which is subtracted.
    """

    def __init__(
        self, y_true: NDArray[np.int8], y_score: NDArray[np.float64], segments: Segments, label: int
    ) -> None:
        rows = np.flatnonzero(y_true == label)
        codes = segments.codes[rows]
        present = np.unique(codes)
        self.names = tuple(segments.names[k] for k in present)
        self.sizes = np.bincount(codes, minlength=len(segments))[present]
        self.rows = rows[np.argsort(y_score[rows], kind="stable")]
        ordered = y_score[self.rows]
        self.lo = np.searchsorted(ordered, ordered, side="left")
        self.hi = np.searchsorted(ordered, ordered, side="right")
        # Segment of each sorted row, renumbered 0..k-1 among the segments present.
        self.codes = np.searchsorted(present, segments.codes[self.rows])
        self.k = present.size

    def __call__(self, w: Weights, total: float | None = None) -> NDArray[np.float64]:
        ws = w[self.rows]
        cs = np.concatenate([[0.0], np.cumsum(ws)])
        mid = 0.5 * (cs[self.lo] + cs[self.hi])  # weight below each row, ties one half
        w_seg = np.bincount(self.codes, weights=ws, minlength=self.k)
        u = np.bincount(self.codes, weights=ws * mid, minlength=self.k) - 0.5 * w_seg**2
        w_rest = cs[-1] - w_seg
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = u / (w_seg * w_rest)
        auc[(w_seg <= 0) | (w_rest <= 0)] = np.nan
        return np.asarray(auc, dtype=np.float64)

    def null_leakage(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        """max over segments of |AUC − 0.5| on the full data with the segments assigned at
        random among the rows of the label (sizes kept): ``n`` draws of the summary's null.

        With unit weights each row's weight below it (its mid-rank) is fixed, so a segment's AUC
        is a linear function of the sum of its rows' mid-ranks. Up to EXACT_NULL_MAX_ROWS rows
        the segments are permuted (one bincount per permutation). Above, those sums are drawn
        from their normal limit with the exact permutation covariance (sampling without
        replacement: Var S_k = n_k (N − n_k) σ² / (N − 1), Cov S_j S_k = −n_j n_k σ² / (N − 1),
        σ² the variance of the mid-ranks, ties included), which costs nothing per row.
        """
        rows, k = self.codes.size, self.k
        mid = 0.5 * (self.lo + self.hi).astype(np.float64)
        sizes = np.bincount(self.codes, minlength=k).astype(np.float64)
        denominator = sizes * (rows - sizes)
        if rows > EXACT_NULL_MAX_ROWS:
            sigma2 = float(mid.var())
            cov = -np.outer(sizes, sizes) * sigma2 / (rows - 1)
            np.fill_diagonal(cov, sizes * (rows - sizes) * sigma2 / (rows - 1))
            # The sums add up to a constant, so cov is singular: factor it by its eigenvalues,
            # the ~0 ones (rounding makes them slightly negative) clipped to 0.
            values, vectors = np.linalg.eigh(cov)
            factor = vectors * np.sqrt(np.clip(values, 0.0, None))
            sums = rng.standard_normal((n, k)) @ factor.T
            return np.asarray(np.abs(sums / denominator).max(axis=1), dtype=np.float64)
        out = np.empty(n)
        block = max(1, min(n, (1 << 22) // max(rows, 1)))
        for start in range(0, n, block):
            b = min(block, n - start)
            codes = rng.permuted(np.tile(self.codes, (b, 1)), axis=1)
            flat = (codes + (np.arange(b) * k)[:, None]).ravel()
            sums = np.bincount(flat, weights=np.tile(mid, b), minlength=b * k).reshape(b, k)
            auc = (sums - 0.5 * sizes**2) / denominator
            out[start : start + b] = np.abs(auc - 0.5).max(axis=1)
        return out


def _undefined_where(
    numerator: NDArray[np.float64], denominator: NDArray[np.float64], undefined: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """numerator / denominator, NaN where ``undefined`` (a class absent from the resample)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(numerator / denominator, dtype=np.float64)
    out[undefined] = np.nan
    return out
