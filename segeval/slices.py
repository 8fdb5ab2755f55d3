"""The slice lattice and the simultaneous inference of slice discovery (pure statistics).

A *slice* is a conjunction of conditions on metadata columns (``site=B & view=MLO``). The
lattice holds every conjunction of up to ``order`` of the given columns that is present in the
data with at least ``min_support`` positives *and* negatives inside it and in its complement
(AUC needs both classes on both sides). Continuous columns are binned with fixed cut points
given by the user (``age:50,60,70``): cuts chosen on the data being tested would make the
family of hypotheses depend on the outcome. A conjunction holding exactly the same rows as a
shorter one (``scanner=X`` when every X is at ``site=A``) is the same slice and is kept once,
under its shortest description.

The inference (:func:`max_t_stepdown`, :func:`benjamini`, :func:`explained_by`) works on the
joint bootstrap draws of every slice's statistic, drawn on the same resamples by the engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import norm

from segeval._slice_kernels import FamilyCodes
from segeval.segments import SegmentColumn, _column_codes
from segeval.validation import InputError

MAX_ORDER = 4


@dataclass(frozen=True)
class Lattice:
    """The tested slices and the families (column combinations) they come from.

    Attributes
    ----------
    families : list of FamilyCodes
        Per column combination, each row's slice code (``k`` for rows of no tested slice).
    slices : DataFrame
        One row per tested slice, in the kernel's order: ``slice`` (its description),
        ``order``, ``n``, ``n_pos``, ``n_neg``, ``prevalence``.
    conditions : list of frozenset of str
        Each slice's conditions (``"site=B"``), for the ancestor relation.
    n_candidates, n_small, n_duplicate : int
        Conjunctions present in the data; left out for support; left out as the same rows as a
        shorter conjunction.
    """

    families: list[FamilyCodes]
    slices: pd.DataFrame
    conditions: list[frozenset[str]]
    where: list[tuple[int, int]]
    n_candidates: int
    n_small: int
    n_duplicate: int

    def member(self, i: int) -> NDArray[np.bool_]:
        """Whether each row is in slice ``i``."""
        family, code = self.where[i]
        return np.asarray(self.families[family].codes == code)

    def ancestors(self) -> list[list[int]]:
        """For each slice, the tested slices whose conditions are a proper subset of its own."""
        index = {c: i for i, c in enumerate(self.conditions)}
        out = []
        for conds in self.conditions:
            found = []
            for r in range(1, len(conds)):
                for sub in itertools.combinations(sorted(conds), r):
                    j = index.get(frozenset(sub))
                    if j is not None:
                        found.append(j)
            out.append(found)
        return out


def build_lattice(
    frame: pd.DataFrame,
    columns: Sequence[SegmentColumn],
    y: NDArray[np.int8],
    *,
    order: int = 3,
    min_support: int = 20,
) -> Lattice:
    """Every conjunction of up to ``order`` of ``columns`` with both classes at ``min_support``.

    Slices are kept if they hold at least ``min_support`` positives and ``min_support``
    negatives, and so does their complement. Families are enumerated by order, then in the
    order of ``columns``; slices within a family in the order of their values (bins in bin
    order).
    """
    if not 1 <= order <= MAX_ORDER:
        raise InputError(f"order must be between 1 and {MAX_ORDER}; got {order!r}.")
    if min_support < 1:
        raise InputError(f"min_support must be at least 1; got {min_support!r}.")
    per_column = [_column_codes(frame, c) for c in columns]
    n = y.size
    n_pos_all = int(y.sum())
    n_neg_all = n - n_pos_all
    # A fixed pseudo-random weight per row: two slices holding the same rows have the same sum.
    fingerprint_weights = np.random.default_rng(0).random(n)
    seen: dict[tuple[int, float], int] = {}
    families: list[FamilyCodes] = []
    rows: list[tuple[str, int, int, int, int]] = []
    conditions: list[frozenset[str]] = []
    where: list[tuple[int, int]] = []
    n_candidates = n_small = n_duplicate = 0
    for r in range(1, min(order, len(columns)) + 1):
        for combo in itertools.combinations(range(len(columns)), r):
            radix = [len(per_column[j][1]) for j in combo]
            key = np.zeros(n, dtype=np.int64)
            for j, size in zip(combo, radix, strict=True):
                key = key * size + per_column[j][0]
            code, present = pd.factorize(key, sort=True)
            count = np.bincount(code, minlength=present.size)
            pos = np.bincount(code, weights=y, minlength=present.size).astype(np.int64)
            neg = count - pos
            prints = np.bincount(code, weights=fingerprint_weights, minlength=present.size)
            n_candidates += present.size
            big = (
                (pos >= min_support)
                & (neg >= min_support)
                & (n_pos_all - pos >= min_support)
                & (n_neg_all - neg >= min_support)
            )
            n_small += int((~big).sum())
            new_code = np.full(present.size, -1, dtype=np.intp)
            k = 0
            for s in np.flatnonzero(big):
                fp = (int(count[s]), float(prints[s]))
                if fp in seen:
                    n_duplicate += 1
                    continue
                values = np.unravel_index(int(present[s]), radix)
                conds = [
                    f"{columns[j].name}={per_column[j][1][v]}"
                    for j, v in zip(combo, values, strict=True)
                ]
                seen[fp] = len(rows)
                rows.append((" & ".join(conds), r, int(count[s]), int(pos[s]), int(neg[s])))
                conditions.append(frozenset(conds))
                where.append((len(families), k))
                new_code[s] = k
                k += 1
            if k:
                codes = new_code[code]
                families.append(FamilyCodes(np.where(codes < 0, k, codes).astype(np.intp), k))
    table = pd.DataFrame(rows, columns=["slice", "order", "n", "n_pos", "n_neg"])
    table["prevalence"] = table.n_pos / table.n.where(table.n > 0)
    return Lattice(families, table, conditions, where, n_candidates, n_small, n_duplicate)


def studentized(
    estimate: NDArray[np.float64], draws: NDArray[np.float64], margin: float = 0.0
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Evidence that each statistic is below ``−margin``, and its centred bootstrap null.

    Returns ``se`` (bootstrap SD of the defined draws), ``z = −(estimate + margin) / se``
    (large when the slice is worse) and ``z_null = −(draws − estimate) / se`` (the centred
    draws, ``−inf`` where a resample leaves the statistic undefined, so it never sets a
    maximum). A statistic with no spread gets ``z = NaN`` and is left out of the family.
    """
    with np.errstate(invalid="ignore"):
        se = (
            np.nanstd(draws, axis=0, ddof=1)
            if draws.shape[0] > 1
            else np.full(estimate.shape, np.nan)
        )
    se = np.where(se > 0, se, np.nan)
    z = -(estimate + margin) / se
    z_null = -(draws - estimate) / se
    z_null = np.where(np.isnan(z_null), -np.inf, z_null)
    return se, z, z_null


def max_t_stepdown(z: NDArray[np.float64], z_null: NDArray[np.float64]) -> NDArray[np.float64]:
    """Westfall–Young step-down adjusted p-values from the joint null draws (max-T).

    ``z`` (m,) is each hypothesis' evidence (larger = more extreme), ``z_null`` (B, m) its
    centred bootstrap draws. With hypotheses sorted by decreasing ``z``, the j-th adjusted
    p-value is the share of resamples whose maximum over the hypotheses not yet rejected
    (positions j, j+1, ...) reaches ``z_(j)``, with the +1 of a Monte-Carlo p-value, made
    monotone. Because every slice is drawn on the same resamples, the maximum carries their
    dependence (nested and overlapping slices), which Bonferroni or Holm ignore. NaN entries of
    ``z`` are left out (NaN p-value).

    Examples
    --------
    >>> z_null = np.random.default_rng(0).standard_normal((999, 3))
    >>> p = max_t_stepdown(np.array([4.0, 0.0, 2.5]), z_null)
    >>> bool(p[0] < 0.01 and p[1] > 0.3 and p[0] <= p[2] <= p[1])
    True
    """
    out = np.full(z.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(z))
    if valid.size == 0:
        return out
    order = valid[np.argsort(-z[valid], kind="stable")]
    # Running maximum from the last (least extreme) hypothesis backwards: successive maxima.
    tail_max = np.maximum.accumulate(z_null[:, order[::-1]], axis=1)[:, ::-1]
    b = z_null.shape[0]
    exceed = (tail_max >= z[order][np.newaxis, :]).sum(axis=0)
    p = np.maximum.accumulate((1 + exceed) / (b + 1))
    out[order] = np.minimum(p, 1.0)
    return out


def one_sided_p(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """p-value of each studentized statistic against the normal: ``1 − Φ(z)``."""
    return np.asarray(norm.sf(z), dtype=np.float64)


def benjamini(p_values: NDArray[np.float64], *, dependent: bool = False) -> NDArray[np.float64]:
    """Benjamini–Hochberg adjusted p-values (q-values); Benjamini–Yekutieli with ``dependent``.

    BH controls the false discovery rate for independent or positively dependent tests; BY
    multiplies by ``sum_{i<=m} 1/i`` and holds under any dependence. NaN entries are left out.

    Examples
    --------
    >>> benjamini(np.array([0.01, 0.04, 0.03])).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scale = m / np.arange(1, m + 1)
    if dependent:
        scale = scale * np.sum(1.0 / np.arange(1, m + 1))
    q = np.minimum.accumulate((p[order] * scale)[::-1])[::-1]
    out[order] = np.minimum(q, 1.0)
    return out


def worse_p(s: int, a: int, estimate: NDArray[np.float64], draws: NDArray[np.float64]) -> float:
    """One-sided p-value that slice ``s`` is worse than slice ``a`` (``estimate[s] <
    estimate[a]``), studentized by the bootstrap SD of the paired difference on the shared
    resamples, against the normal."""
    diff = float(estimate[s] - estimate[a])
    spread = draws[:, s] - draws[:, a]
    se = float(np.nanstd(spread, ddof=1)) if np.isfinite(spread).sum() > 1 else float("nan")
    if not se > 0:
        return 0.0 if diff < 0 else 1.0
    return float(norm.cdf(diff / se))


def explained_by(
    flagged: NDArray[np.bool_],
    lattice: Lattice,
    estimate: NDArray[np.float64],
    draws: NDArray[np.float64],
    *,
    alpha: float,
) -> list[int | None]:
    """For each flagged slice, the slice that explains it, else None (minimal description).

    Two rules, both tested on the shared resamples (:func:`worse_p`), each comparison at
    ``alpha / m`` with m the number of (slice, flagged ancestor) pairs (Bonferroni): with many
    refinements of a failing slice, one of them is always worst by chance, and the shorter
    description should win unless the longer one clearly adds to it.

    1. *Up*: a flagged ancestor A (a subset of the conditions) explains a flagged slice S unless
       S is significantly worse than A. Of the ancestors that explain S, the worst (lowest
       estimate) is returned.
    2. *Down*: among the slices no ancestor explains, a slice P is explained by a child
       C = P & (column=v) that is significantly worse than P when no sibling of C
       (P & column=other value, among the tested slices) is flagged: P's failure sits in C.

    This only removes slices from the flagged set, so whatever error rate the flagged set
    controls, the reported set controls too.
    """
    out: list[int | None] = [None] * flagged.size
    ancestors = lattice.ancestors()
    pairs = sum(int(flagged[ancestors[s]].sum()) for s in np.flatnonzero(flagged).tolist())
    level = alpha / max(pairs, 1)
    for s in np.flatnonzero(flagged).tolist():
        best: tuple[float, int] | None = None
        for a in ancestors[s]:
            explains = flagged[a] and worse_p(s, a, estimate, draws) >= level
            if explains and (best is None or estimate[a] < best[0]):
                best = (float(estimate[a]), a)
        out[s] = None if best is None else best[1]
    kept = [s for s in np.flatnonzero(flagged).tolist() if out[s] is None]
    index = {c: i for i, c in enumerate(lattice.conditions)}
    for c in kept:
        for cond in lattice.conditions[c]:
            parent = index.get(lattice.conditions[c] - {cond})
            if parent is None or out[parent] is not None or not flagged[parent]:
                continue
            column = cond.split("=", 1)[0] + "="
            siblings = [
                i
                for i, conds in enumerate(lattice.conditions)
                if len(conds) == len(lattice.conditions[c])
                and conds > lattice.conditions[parent]
                and i != c
                and any(x.startswith(column) for x in conds - lattice.conditions[parent])
            ]
            if not any(flagged[i] for i in siblings) and (
                worse_p(c, parent, estimate, draws) < level
            ):
                out[parent] = c
    return out
