"""The slice kernel as it was before the per-cell sums (commit a5379d7), kept verbatim as the
named peer of ``bench/discover.py --speed``: timed in the same run, and its AUCs compared bit for
bit with the kernel's.

Every slice's AUC and its complement's AUC, for any row weights, in O(n) per slice family.

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
from typing import Any

import numpy as np
from numpy.typing import NDArray

from segeval._kernels import Weights
from segeval._slice_kernels import FamilyCodes


class _Sorted:
    """The rows of some groups, positives and negatives apart, each sorted by (group, score).

    Rows are positions in the whole set's score order, so reading the weights of one group is a
    forward pass through that order. ``within(wg)`` gives, per group, U(G, G), W+(G) and W-(G),
    and per positive its weight and the weight of its group's negatives below it (ties one half).
    """

    def __init__(
        self, rows: NDArray[np.intp], group: NDArray[np.intp], rank: NDArray[np.intp], y: NDArray
    ) -> None:
        n_ranks = int(rank.max()) + 1 if rank.size else 1
        key = group.astype(np.int64) * n_ranks + rank
        is_pos = y == 1
        neg_order = np.argsort(key[~is_pos], kind="stable")
        pos_order = np.argsort(key[is_pos], kind="stable")
        neg_key = key[~is_pos][neg_order]
        pos_key = key[is_pos][pos_order]
        self.neg_rows = rows[~is_pos][neg_order]
        self.pos_rows = rows[is_pos][pos_order]
        self.pos_group = group[is_pos][pos_order]
        self.lo = np.searchsorted(neg_key, pos_key, side="left")
        hi = np.searchsorted(neg_key, pos_key, side="right")
        # Only positives tied with a negative of their group need the half correction.
        self.tied = np.flatnonzero(hi != self.lo)
        self.tied_lo = self.lo[self.tied]
        self.tied_hi = hi[self.tied]
        self.k = int(group.max()) + 1 if group.size else 0
        bounds = np.arange(self.k + 1, dtype=np.int64) * n_ranks
        edges = np.searchsorted(neg_key, bounds, side="left")
        self.starts, self.ends = edges[:-1], edges[1:]

    def within(self, wg: NDArray[Any]) -> tuple[NDArray[Any], ...]:
        """Per group: U(G, G), W+(G), W-(G); per positive: its weight and the negatives strictly
        below; and the negatives' cumulative sum (ties are read off it).

        ``wg`` may hold small integers (bootstrap counts, the fast path: the gathers move a
        quarter of the bytes and the cumulative sum is exact in int64) or any floats.
        """
        acc = np.int64 if wg.dtype.kind in "iu" else np.float64
        cs = np.zeros(self.neg_rows.size + 1, dtype=acc)
        np.cumsum(np.take(wg, self.neg_rows), out=cs[1:], dtype=acc)
        wp = np.take(wg, self.pos_rows)
        below = np.take(cs, self.lo, mode="clip")
        w_pos = np.bincount(self.pos_group, weights=wp, minlength=self.k)
        u = np.asarray(
            np.bincount(self.pos_group, weights=wp * below, minlength=self.k), dtype=np.float64
        )
        if self.tied.size:
            half = wp[self.tied] * (cs[self.tied_hi] - cs[self.tied_lo])
            u += 0.5 * np.bincount(self.pos_group[self.tied], weights=half, minlength=self.k)
        u -= w_pos * cs[self.starts]
        w_neg = (cs[self.ends] - cs[self.starts]).astype(np.float64)
        return u, w_pos, w_neg, wp, below, cs


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
        # Everything is indexed by position in score order: go[p] is the row at position p.
        self.go = np.argsort(y_score, kind="stable")
        _, rank = np.unique(y_score[self.go], return_inverse=True)
        rank = rank.reshape(-1).astype(np.intp)
        y = np.asarray(y_true)[self.go]
        n = y.size
        self.whole = _Sorted(np.arange(n), np.zeros(n, dtype=np.intp), rank, y)
        # Each negative's positives below (ties one half), from the positives' cumulative sum.
        pos_rank = rank[self.whole.pos_rows]
        neg_rank = rank[self.whole.neg_rows]
        self.neg_lo = np.searchsorted(pos_rank, neg_rank, side="left")
        self.neg_hi = np.searchsorted(pos_rank, neg_rank, side="right")
        self.families = []
        for fam in families:
            codes = fam.codes[self.go]
            kept = np.flatnonzero(codes < fam.k)
            sorted_ = _Sorted(kept, codes[kept], rank[kept], y[kept])
            self.families.append(
                (fam.k, sorted_, codes[self.whole.pos_rows], codes[self.whole.neg_rows])
            )
        self.n_slices = sum(fam.k for fam in families)

    def __call__(self, w: Weights, total: float | None = None) -> NDArray[np.float64]:
        """AUC(S) for every slice, then AUC(not S), for row weights ``w``."""
        wg = _compact(np.take(w, self.go))
        u_all, w_pos_all, w_neg_all, wp, below, cs_neg = self.whole.within(wg)
        pos_all, neg_all = float(w_pos_all[0]), float(w_neg_all[0])
        whole = self.whole
        # Each positive: its weight x the negatives below it (ties one half).
        from_pos = (wp * below).astype(np.float64)
        if whole.tied.size:
            from_pos[whole.tied] += (
                0.5 * wp[whole.tied] * (cs_neg[whole.tied_hi] - cs_neg[whole.tied_lo])
            )
        # Each negative: its weight x the positives above it (ties one half).
        cs = np.zeros(wp.size + 1)
        np.cumsum(wp, out=cs[1:], dtype=np.float64)
        wn = np.take(wg, whole.neg_rows)
        from_neg = wn * (pos_all - 0.5 * (cs[self.neg_lo] + cs[self.neg_hi]))
        out = np.empty(2 * self.n_slices)
        start = 0
        for k, fam, pos_code, neg_code in self.families:
            u_in, w_pos, w_neg, *_ = fam.within(wg)
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


def _compact(w: NDArray[np.float64]) -> NDArray[Any]:
    """Bootstrap counts as int16 (exact, and a quarter of the bytes to gather); else as is."""
    if w.size and w.min() >= 0 and w.max() < 2**15:
        small = w.astype(np.int16)
        if np.array_equal(small, w):
            return small
    return w


def _ratio(numerator: NDArray[np.float64], pairs: NDArray[np.float64]) -> NDArray[np.float64]:
    """numerator / pairs, NaN where there is no pair (a class absent)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(numerator / pairs, dtype=np.float64)
    out[pairs <= 0] = np.nan
    return out
