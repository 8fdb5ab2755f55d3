"""Every slice's AUC and its complement's AUC, for any row weights, in O(n) per slice family.

A *slice family* is one combination of metadata columns (``site``, ``site × view``, ...); its
slices partition the rows (rows of slices too small to test go to a sink code and are left out
of the family). :class:`SliceAUCKernel` is built once from (labels, scores, families) and, called
with row weights (a bootstrap resample's counts), returns the vector of AUC(S) for every slice S
of every family followed by the vector of AUC(not S), in the same slice order.

Why it is fast. With U(P, N) the weighted count of (positive in P, negative in N) pairs ordered
positive above negative (ties one half), and ``~S`` the complement of S::

    AUC(S)  = U(S, S)   / (W+(S)  W-(S))
    U(~S, ~S) = U(all, all) − U(S, all) − U(all, S) + U(S, S)
    AUC(~S) = U(~S, ~S) / (W+(~S) W-(~S))

- U(all, all), and for every positive the weight of negatives below it (ties one half), come
  from one cumulative sum of negative weights in global score order; summed per slice code with
  ``np.bincount`` they give U(S, all) for every slice of a family at once. U(all, S) is the same
  with the roles swapped (the weight of positives above each negative).
- U(S, S) for every slice of a family: the family's rows are sorted once by (slice code, score
  rank), so one cumulative sum of negative weights in that order, read at each positive's
  position, counts the negatives below it *within its own slice* once the sum at the slice's
  start is subtracted — per slice, W+(S) times that start value, so no per-row subtraction.

Per resample and family this costs a gather of the weights, a cumulative sum, a gather at the
positives and four bincounts: no sort, whatever the number of slices in the family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from segeval._kernels import Weights


@dataclass(frozen=True)
class FamilyCodes:
    """One slice family: the slice code of every row, ``k`` for rows of no tested slice."""

    codes: NDArray[np.intp]
    k: int


class _Sorted:
    """Rows sorted by (group code, score rank): positions of the positives and their ties.

    ``below(w_sorted)`` gives, for every positive (in sorted order), the weight of the
    negatives of its own group scored below it, ties counting one half, plus the cumulative sum
    it read (for the per-group start values).
    """

    def __init__(
        self, rows: NDArray[np.intp], group: NDArray[np.intp], rank: NDArray[np.intp], y: NDArray
    ) -> None:
        n_ranks = int(rank.max()) + 1 if rank.size else 1
        key = group.astype(np.int64) * n_ranks + rank
        order = np.argsort(key, kind="stable")
        self.rows = rows[order]
        key = key[order]
        is_pos = y[self.rows] == 1
        self.neg = (~is_pos).astype(np.float64)
        self.pos_at = np.flatnonzero(is_pos)
        self.pos_group = group[order][self.pos_at]
        self.lo = np.searchsorted(key, key[self.pos_at], side="left")
        hi = np.searchsorted(key, key[self.pos_at], side="right")
        # Ties between a positive and a negative of the same group need the half correction.
        cum_neg = np.concatenate([[0], np.cumsum(self.neg)])
        self.tied = np.flatnonzero(cum_neg[hi] != cum_neg[self.lo])
        self.tied_lo = self.lo[self.tied]
        self.tied_hi = hi[self.tied]
        k = int(group.max()) + 1 if group.size else 0
        self.starts = np.searchsorted(key, np.arange(k, dtype=np.int64) * n_ranks, side="left")
        self.ends = np.searchsorted(key, np.arange(1, k + 1, dtype=np.int64) * n_ranks, "left")
        self.k = k

    def within(self, w: Weights) -> tuple[NDArray[np.float64], ...]:
        """Per group: U(G, G), W+(G), W-(G); and per positive: its weight and negatives below."""
        ws = w[self.rows]
        cs = np.empty(ws.size + 1)
        cs[0] = 0.0
        np.cumsum(ws * self.neg, out=cs[1:])
        wp = ws[self.pos_at]
        below = np.take(cs, self.lo, mode="clip")
        if self.tied.size:
            below[self.tied] += 0.5 * (cs[self.tied_hi] - cs[self.tied_lo])
        w_pos = np.bincount(self.pos_group, weights=wp, minlength=self.k).astype(np.float64)
        u = np.bincount(self.pos_group, weights=wp * below, minlength=self.k).astype(np.float64)
        u = u - w_pos * cs[self.starts]
        w_neg = cs[self.ends] - cs[self.starts]
        return u, w_pos, w_neg, wp, below


class SliceAUCKernel:
    """AUC of every slice and of its complement, for fixed labels, scores and slice families.

    Called with row weights ``w`` it returns an array of length ``2 K`` (K = number of slices
    over all families, in family order): AUC(S) for every slice, then AUC(not S). NaN where a
    resample leaves a slice or its complement without one of the classes.
    """

    def __init__(
        self,
        y_true: NDArray[np.int8],
        y_score: NDArray[np.float64],
        families: Sequence[FamilyCodes],
    ) -> None:
        y = np.asarray(y_true)
        _, rank = np.unique(y_score, return_inverse=True)
        rank = rank.reshape(-1).astype(np.intp)
        every = np.arange(y.size)
        self.whole = _Sorted(every, np.zeros(y.size, dtype=np.intp), rank, y)
        # Rows of the whole set in its sorted order, positives and negatives apart, to attribute
        # the global per-row pair counts to each family's slices.
        rows = self.whole.rows
        self.pos_rows = rows[self.whole.pos_at]
        self.neg_at = np.flatnonzero(y[rows] == 0)
        self.neg_rows = rows[self.neg_at]
        # Positives' cumulative weights, read at each negative: the positives below it.
        ordered = y_score[rows]
        pos_scores = ordered[self.whole.pos_at]
        self.neg_lo = np.searchsorted(pos_scores, ordered[self.neg_at], side="left")
        self.neg_hi = np.searchsorted(pos_scores, ordered[self.neg_at], side="right")
        self.families = []
        for fam in families:
            kept = np.flatnonzero(fam.codes < fam.k)
            sorted_ = _Sorted(kept, fam.codes[kept], rank[kept], y)
            self.families.append(
                (fam.k, sorted_, fam.codes[self.pos_rows], fam.codes[self.neg_rows])
            )
        self.n_slices = sum(fam.k for fam in families)

    def __call__(self, w: Weights, total: float | None = None) -> NDArray[np.float64]:
        """AUC(S) for every slice, then AUC(not S), for row weights ``w``."""
        u_all, w_pos_all, w_neg_all, wp, below = self.whole.within(w)
        pos_all, neg_all = float(w_pos_all[0]), float(w_neg_all[0])
        from_pos = wp * below  # each positive: its weight x the negatives below it
        # Each negative: its weight x the positives above it (ties one half).
        cs = np.empty(wp.size + 1)
        cs[0] = 0.0
        np.cumsum(wp, out=cs[1:])
        wn = w[self.neg_rows]
        from_neg = wn * (pos_all - 0.5 * (cs[self.neg_lo] + cs[self.neg_hi]))
        out = np.empty(2 * self.n_slices)
        start = 0
        for k, fam, pos_code, neg_code in self.families:
            u_in, w_pos, w_neg, _, _ = fam.within(w)
            u_pos = np.bincount(pos_code, weights=from_pos, minlength=k + 1)[:k]
            u_neg = np.bincount(neg_code, weights=from_neg, minlength=k + 1)[:k]
            u_out = float(u_all[0]) - u_pos - u_neg + u_in
            rest_pos, rest_neg = pos_all - w_pos, neg_all - w_neg
            out[start : start + k] = _ratio(u_in, w_pos * w_neg)
            out[self.n_slices + start : self.n_slices + start + k] = _ratio(
                u_out, rest_pos * rest_neg
            )
            start += k
        return out


def _ratio(numerator: NDArray[np.float64], pairs: NDArray[np.float64]) -> NDArray[np.float64]:
    """numerator / pairs, NaN where there is no pair (a class absent)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(numerator / pairs, dtype=np.float64)
    out[pairs <= 0] = np.nan
    return out
