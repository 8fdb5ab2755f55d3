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
  from one cumulative sum of negative weights in global score order; summed per slice they give
  U(S, all). U(all, S) is the same with the roles swapped (the weight of positives above each
  negative). These row terms are summed once per resample into the *cells* of the lattice (the
  distinct combinations of every family's slice code, at most the product of the columns'
  values: 4^8 = 65,536 cells for 8 columns of 4 values), with W+ per cell; every slice's W+(S),
  U(S, all) and U(all, S) are then one sparse (slice x cell) product: no per-family row pass.
- U(S, S) for every slice of a family: the family's rows are sorted once by (slice code, score
  rank), so one cumulative sum of negative weights in that order, read at each positive's
  position, counts the negatives below it *within its own slice* once the sum at the slice's
  start is subtracted — per slice, W+(S) times that start value, so no per-row subtraction.
  Positives are sorted by slice too, so the per-slice sums are sums of contiguous runs
  (``np.add.reduceat``), not scattered additions.

Per resample and family this costs two gathers of the weights, a cumulative sum, a gather at
the positives, a product and a run sum over rows, into work arrays reused from family to family:
no sort, whatever the number of slices in the family.

Exactness. Bootstrap weights are integer counts: every sum above is then an integer or a half
integer below 2^53, exact in int64 or float64 in any order, and each AUC is the correctly
rounded quotient of two exact numbers — the same bits whatever the order of summation. With
real weights the sums round (relative error ~1e-16 per term).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_array

from segeval._kernels import Weights


@dataclass(frozen=True)
class FamilyCodes:
    """One slice family: the slice code of every row, ``k`` for rows of no tested slice."""

    codes: NDArray[np.intp]
    k: int


class _Sorted:
    """The rows of some groups, positives and negatives apart, each sorted by (group, score).

    Rows are positions in the whole set's score order, given in increasing order (so ``rank``
    does not decrease along them), and reading the weights of one group is a forward pass
    through that order. ``within(wg)`` gives, per group, U(G, G), W+(G) and W-(G), and per
    positive its weight and the weight of its group's negatives below it (ties one half).
    """

    def __init__(
        self, rows: NDArray[np.intp], group: NDArray[np.intp], rank: NDArray[np.intp], y: NDArray
    ) -> None:
        n_ranks = int(rank.max()) + 1 if rank.size else 1
        self.k = int(group.max()) + 1 if group.size else 0
        is_pos = y == 1
        # Rows come in score order: a stable sort by group alone sorts by (group, score), and on
        # small integers numpy's stable sort is a radix sort.
        small = group.astype(np.int16) if self.k < 2**15 else group
        neg_order = np.argsort(small[~is_pos], kind="stable")
        pos_order = np.argsort(small[is_pos], kind="stable")
        key = group.astype(np.int64) * n_ranks + rank
        neg_key = key[~is_pos][neg_order]
        pos_key = key[is_pos][pos_order]
        self.neg_rows = rows[~is_pos][neg_order]
        self.pos_rows = rows[is_pos][pos_order]
        pos_group = group[is_pos][pos_order]
        self.lo = np.searchsorted(neg_key, pos_key, side="left")
        hi = np.searchsorted(neg_key, pos_key, side="right")
        # Only positives tied with a negative of their group need the half correction.
        self.tied = np.flatnonzero(hi != self.lo)
        self.tied_lo = self.lo[self.tied]
        self.tied_hi = hi[self.tied]
        self.tied_group = pos_group[self.tied]
        groups = np.arange(self.k + 1)
        edges = np.searchsorted(neg_key, groups * n_ranks, side="left")
        self.starts, self.ends = edges[:-1], edges[1:]
        # The runs of each group's positives; reduceat is given the non-empty ones only.
        pos_edges = np.searchsorted(pos_group, groups, side="left")
        self.pos_filled = np.flatnonzero(pos_edges[1:] > pos_edges[:-1])
        self.pos_run_starts = pos_edges[:-1][self.pos_filled]

    def _per_group(self, values: NDArray[Any], dtype: Any) -> NDArray[Any]:
        """Sum of ``values`` (one per positive, in this order) over each group's run."""
        out = np.zeros(self.k, dtype=dtype)
        if self.pos_filled.size:
            out[self.pos_filled] = np.add.reduceat(values, self.pos_run_starts, dtype=dtype)
        return out

    def within(
        self,
        wg: NDArray[Any],
        w_pos: NDArray[np.float64] | None = None,
        scratch: _Scratch | None = None,
    ) -> tuple[NDArray[Any], ...]:
        """Per group: U(G, G), W+(G), W-(G); per positive: its weight and the negatives strictly
        below; and the negatives' cumulative sum (ties are read off it).

        ``wg`` may hold small integers (bootstrap counts, the fast path: the gathers move a
        quarter of the bytes and the sums are exact in int64) or any floats. ``w_pos``, when
        known, is W+(G). The arrays returned per row live in ``scratch`` when it is given
        (reused by the next call: no fresh pages to fault in per family).
        """
        acc = np.int64 if wg.dtype.kind in "iu" else np.float64
        n_neg, n_pos = self.neg_rows.size, self.pos_rows.size
        buf = scratch if scratch is not None else _Scratch(n_neg, n_pos)
        cs = buf.get("cs", n_neg + 1, acc)
        cs[0] = 0
        gathered = np.take(wg, self.neg_rows, out=buf.get("neg", n_neg, wg.dtype), mode="wrap")
        np.cumsum(gathered, out=cs[1:], dtype=acc)
        wp = np.take(wg, self.pos_rows, out=buf.get("wp", n_pos, wg.dtype), mode="wrap")
        below = np.take(cs, self.lo, out=buf.get("below", n_pos, acc), mode="wrap")
        if w_pos is None:
            w_pos = self._per_group(wp, acc).astype(np.float64)
        product = np.multiply(wp, below, out=buf.get("product", n_pos, acc), dtype=acc)
        u = self._per_group(product, acc).astype(np.float64)
        if self.tied.size:
            half = wp[self.tied] * (cs[self.tied_hi] - cs[self.tied_lo])
            u += 0.5 * np.bincount(self.tied_group, weights=half, minlength=self.k)
        u -= w_pos * cs[self.starts]
        w_neg = (cs[self.ends] - cs[self.starts]).astype(np.float64)
        return u, w_pos, w_neg, wp, below, cs


class _Scratch:
    """Work arrays reused across the families of one resample (and across resamples): fresh
    arrays of a few MB each would be new pages, faulted in on every call."""

    def __init__(self, n_neg: int, n_pos: int) -> None:
        self.size = {"cs": n_neg + 1, "neg": n_neg, "wp": n_pos, "below": n_pos, "product": n_pos}
        self.arrays: dict[tuple[str, str], NDArray[Any]] = {}

    def get(self, name: str, length: int, dtype: Any) -> NDArray[Any]:
        """The first ``length`` entries of the work array ``name`` of type ``dtype``."""
        key = (name, np.dtype(dtype).str)
        if key not in self.arrays:
            self.arrays[key] = np.empty(self.size[name], dtype=dtype)
        return self.arrays[key][:length]


def _cells(families: Sequence[FamilyCodes], n: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Each row's cell (its combination of every family's code) and one row of each cell."""
    key = np.zeros(n, dtype=np.int64)
    bound = 1
    for fam in families:
        if bound * (fam.k + 1) >= 2**62:
            key = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)
            bound = int(key.max()) + 1
        key = key * (fam.k + 1) + fam.codes
        bound *= fam.k + 1
    _, first, cell = np.unique(key, return_index=True, return_inverse=True)
    return cell.reshape(-1).astype(np.intp), first.astype(np.intp)


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
        cell, first = _cells(families, n)
        self.n_cells = first.size
        self.pos_cell = cell[self.go][self.whole.pos_rows]
        self.neg_cell = cell[self.go][self.whole.neg_rows]
        self.families = []
        # Slice x cell membership (CSR: per slice, its cells), so that per-cell sums give every
        # slice's sum in one sparse product.
        slice_cells, per_slice = [], []
        for fam in families:
            codes = fam.codes[self.go]
            kept = np.flatnonzero(codes < fam.k)
            self.families.append((fam.k, _Sorted(kept, codes[kept], rank[kept], y[kept])))
            # The slice of each cell in this family (k: the cell is in no tested slice).
            slice_of_cell = fam.codes[first]
            slice_cells.append(
                np.argsort(slice_of_cell, kind="stable")[: int(np.sum(slice_of_cell < fam.k))]
            )
            per_slice.append(np.bincount(slice_of_cell, minlength=fam.k + 1)[: fam.k])
        self.n_slices = sum(fam.k for fam in families)
        indptr = np.zeros(self.n_slices + 1, dtype=np.int64)
        np.cumsum(np.concatenate([np.zeros(0, np.int64), *per_slice]), out=indptr[1:])
        indices = np.concatenate([np.zeros(0, np.intp), *slice_cells])
        self.membership = csr_array(
            (np.ones(indices.size), indices, indptr), shape=(self.n_slices, self.n_cells)
        )
        self.scratch = _Scratch(
            max((f.neg_rows.size for _, f in self.families), default=0),
            max((f.pos_rows.size for _, f in self.families), default=0),
        )

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
        # W+, U(S, all) and U(all, S) per cell, once; every slice's are sums of its cells.
        per_cell = np.empty((self.n_cells, 3))
        per_cell[:, 0] = np.bincount(self.pos_cell, weights=wp, minlength=self.n_cells)
        per_cell[:, 1] = np.bincount(self.pos_cell, weights=from_pos, minlength=self.n_cells)
        per_cell[:, 2] = np.bincount(self.neg_cell, weights=from_neg, minlength=self.n_cells)
        per_slice = np.asarray(self.membership @ per_cell)
        out = np.empty(2 * self.n_slices)
        start = 0
        for k, fam in self.families:
            w_pos, u_pos, u_neg = per_slice[start : start + k].T
            u_in, _, w_neg, *_ = fam.within(wg, w_pos, self.scratch)
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
