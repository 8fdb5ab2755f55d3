"""Operating-point synchronization: do the segments share their OPs at each threshold?

At a threshold t every segment has an operating point (FPR, TPR). If a model behaves alike on all
segments the points coincide; the spread is the largest pairwise Euclidean distance between them in
ROC space (0 = perfectly synchronized, sqrt(2) at most). Its CI comes from the same Efron bootstrap
as the other statistics, resampling the whole evaluated set so segment sizes vary as they would.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from segeval._kernels import Weights
from segeval.bootstrap import Resample, Resampler, bootstrap_distribution, summarize
from segeval.metrics import DEFAULT_THRESHOLDS, check_thresholds
from segeval.segments import Segments, as_segments
from segeval.validation import (
    SeedLike,
    UndefinedMetricWarning,
    check_consistent_length,
    check_labels,
    check_level,
    check_positive_int,
    check_scores,
)


class OPKernel:
    """Per-segment operating points at fixed thresholds, for any row weights.

    Each row falls in one cell (segment, label, number of thresholds its score reaches), so one
    weighted bincount gives every segment's TP and FP counts at every threshold.
    """

    def __init__(
        self,
        y: NDArray[np.int8],
        s: NDArray[np.float64],
        codes: NDArray[np.intp],
        n_segments: int,
        thresholds: NDArray[np.float64],
    ) -> None:
        order = np.argsort(thresholds)
        self.unsort = np.argsort(order)
        reached = np.searchsorted(
            thresholds[order], s, side="right"
        )  # score >= t_j  <=>  j < reached
        self.k = thresholds.size
        self.shape = (n_segments, 2, self.k + 1)
        self.key = (codes * 2 + y) * (self.k + 1) + reached

    def points(self, w: Weights) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """FPR and TPR, each of shape (n_segments, n_thresholds) in the caller's threshold order."""
        cells = np.bincount(self.key, weights=w, minlength=int(np.prod(self.shape)))
        cells = cells.reshape(self.shape)
        # at_least[..., j] = weight of rows whose score reaches sorted threshold j
        at_least = np.cumsum(cells[..., ::-1], axis=-1)[..., ::-1][..., 1:]
        totals = cells.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = at_least / totals
        rates = rates[..., self.unsort]
        return rates[:, 0], rates[:, 1]


def max_pairwise_distance(
    fpr: NDArray[np.float64], tpr: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Largest Euclidean distance between segment OPs per threshold (column); NaN if any is."""
    dx = fpr[:, None, :] - fpr[None, :, :]
    dy = tpr[:, None, :] - tpr[None, :, :]
    return np.asarray(np.sqrt(dx * dx + dy * dy).max(axis=(0, 1)), dtype=np.float64)


@dataclass(frozen=True)
class OPSyncResult:
    """Per-segment operating points and their spread per threshold.

    ``points``: one row per (segment, threshold) with fpr, tpr, n_pos, n_neg.
    ``spread``: one row per threshold with spread, ci_low, ci_high, n_boot_used, n_boot_undefined.
    ``excluded``: segments left out because one class is absent (their OP is undefined).
    """

    points: pd.DataFrame
    spread: pd.DataFrame
    excluded: tuple[str, ...]


def op_synchronization(
    y_true: ArrayLike,
    y_score: ArrayLike,
    segments: Segments | pd.DataFrame | ArrayLike,
    *,
    thresholds: ArrayLike = DEFAULT_THRESHOLDS,
    n_boot: int = 2000,
    ci: float = 0.95,
    resample: Resample = "rows",
    clusters: ArrayLike | None = None,
    seed: SeedLike = 0,
    n_jobs: int | None = None,
) -> OPSyncResult:
    """Operating points per segment at each threshold, and their spread with a bootstrap CI.

    Segments with one class only have no OP: they are excluded with a warning. A resample in which
    a kept segment loses a class gives an undefined spread; it is excluded and counted.

    Examples
    --------
    >>> y = [0, 1, 0, 1, 0, 1, 0, 1]
    >>> s = [0.1, 0.9, 0.3, 0.7, 0.5, 0.9, 0.7, 0.3]
    >>> r = op_synchronization(y, s, ["A"] * 4 + ["B"] * 4, thresholds=[0.5], n_boot=100)
    >>> r.points[["segment", "fpr", "tpr"]].values.tolist()
    [['A', 0.0, 1.0], ['B', 1.0, 0.5]]
    >>> round(float(r.spread.spread[0]), 4)
    1.118
    """
    y = check_labels(y_true)
    s = check_scores(y_score)
    check_consistent_length(("y_true", y.size), ("y_score", s.size))
    t = check_thresholds(thresholds)
    ci = check_level(ci)
    n_boot = check_positive_int(n_boot, "n_boot")
    seg = as_segments(segments, y.size)
    resampler = Resampler(y, resample=resample, clusters=clusters)
    spread = SpreadStatistic(y, s, seg, t)
    if spread.excluded:
        warnings.warn(
            f"Segments with one class only have no operating point and are left out: "
            f"{', '.join(spread.excluded)}.",
            UndefinedMetricWarning,
            stacklevel=2,
        )
    estimates, draws = bootstrap_distribution(
        [spread], resampler, n_boot=n_boot, seed=seed, n_jobs=n_jobs
    )
    return OPSyncResult(
        points=spread.points(),
        spread=spread_table(t, estimates, draws, ci),
        excluded=spread.excluded,
    )


class SpreadStatistic:
    """The spread of the segments' OPs at each threshold, as a bootstrap statistic of row weights.

    Segments with one class have no OP and are left out (``excluded``); with fewer than two
    segments left the spread is 0 (one segment) or NaN (none).
    """

    def __init__(
        self,
        y: NDArray[np.int8],
        s: NDArray[np.float64],
        segments: Segments,
        thresholds: NDArray[np.float64],
    ) -> None:
        self.segments = segments
        self.thresholds = thresholds
        self.counts = np.bincount(segments.codes * 2 + y, minlength=2 * len(segments)).reshape(
            -1, 2
        )
        defined = (self.counts > 0).all(axis=1)
        self.excluded = tuple(segments.names[k] for k in np.flatnonzero(~defined))
        self.kept = np.flatnonzero(defined)
        self.kernel = OPKernel(y, s, segments.codes, len(segments), thresholds)
        self.n = y.size

    def __call__(self, w: Weights, total: float) -> NDArray[np.float64]:
        if self.kept.size < 2:
            return np.full(self.thresholds.size, np.nan if self.kept.size == 0 else 0.0)
        fpr, tpr = self.kernel.points(w)
        return max_pairwise_distance(fpr[self.kept], tpr[self.kept])

    def points(self) -> pd.DataFrame:
        """One row per (segment, threshold): fpr, tpr, n_pos, n_neg on the full data."""
        t = self.thresholds
        fpr, tpr = self.kernel.points(np.ones(self.n))
        return pd.DataFrame(
            {
                "segment": np.repeat(np.asarray(self.segments.names, dtype=object), t.size),
                "threshold": np.tile(t, len(self.segments)),
                "fpr": fpr.ravel(),
                "tpr": tpr.ravel(),
                "n_pos": np.repeat(self.counts[:, 1], t.size),
                "n_neg": np.repeat(self.counts[:, 0], t.size),
            }
        )


def spread_table(
    thresholds: NDArray[np.float64],
    estimates: NDArray[np.float64],
    draws: NDArray[np.float64],
    ci: float,
) -> pd.DataFrame:
    """One row per threshold: spread, its percentile CI and the resamples used / undefined."""
    summaries = [
        summarize(estimates[j], draws[:, j], ci, what=f"The OP spread at threshold {t:g}")
        for j, t in enumerate(thresholds)
    ]
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "spread": [r.estimate for r in summaries],
            "ci_low": [r.ci_low for r in summaries],
            "ci_high": [r.ci_high for r in summaries],
            "n_boot_used": [r.n_boot_used for r in summaries],
            "n_boot_undefined": [r.n_boot_undefined for r in summaries],
        }
    )
