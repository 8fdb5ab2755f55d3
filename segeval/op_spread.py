"""Operating points per segment, and their spread, as bootstrap statistics of row weights.

At a threshold t every segment has an operating point (FPR, TPR). The spread is the largest
pairwise Euclidean distance between them in ROC space (0 = perfectly synchronized, sqrt(2) at
most). It is the diameter of the point set, found on the convex hull in O(k log k) for k
segments, so 2000 segments cost no more than a few hundred.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.spatial import ConvexHull, QhullError

from segeval._kernels import Weights
from segeval.resampling import summarize
from segeval.segments import Segments

# Up to this many points the k x k distance matrix is cheaper than a convex hull.
BRUTE_FORCE_MAX = 48


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


def _brute_force_diameter(points: NDArray[np.float64]) -> float:
    d = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((d * d).sum(axis=-1)).max())


def diameter(points: NDArray[np.float64]) -> float:
    """Largest Euclidean distance between rows of ``points`` (k x 2); NaN if any is NaN.

    The farthest pair lies on the convex hull, so only hull vertices are compared.
    """
    if np.isnan(points).any():
        return float("nan")
    if len(points) <= BRUTE_FORCE_MAX:
        return _brute_force_diameter(points)
    try:
        vertices = points[ConvexHull(points).vertices]
    except QhullError:  # all points on one line (or one point): the hull is not 2-D
        vertices = np.unique(points, axis=0)
        if len(vertices) > BRUTE_FORCE_MAX:  # collinear: the extremes along the line
            order = np.lexsort((vertices[:, 1], vertices[:, 0]))
            vertices = vertices[order[[0, -1]]]
    return _brute_force_diameter(vertices)


def max_pairwise_distance(
    fpr: NDArray[np.float64], tpr: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Largest Euclidean distance between segment OPs per threshold (column); NaN if any is."""
    return np.array(
        [diameter(np.column_stack([fpr[:, j], tpr[:, j]])) for j in range(fpr.shape[1])],
        dtype=np.float64,
    )


class SpreadStatistic:
    """The spread of the segments' OPs at each threshold, as a bootstrap statistic of row weights.

    Segments with one class have no OP and are left out (``excluded``); with fewer than two
    segments left the spread is undefined (``reason`` says why) and NaN.
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
        self.reason: str | None = None
        if self.kept.size < 2:
            self.reason = (
                f"The OP spread needs two segments with both classes; "
                f"{self.kept.size} of {len(segments)} have both. It is not defined in that case."
            )

    def __call__(self, w: Weights, total: float) -> NDArray[np.float64]:
        if self.reason:
            return np.full(self.thresholds.size, np.nan)
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
    *,
    warn: bool = True,
) -> pd.DataFrame:
    """One row per threshold: spread, its percentile CI and the resamples used / undefined.

    ``warn=False`` for a spread already known undefined (its reason was given once).
    """
    if not warn:
        nan = np.full(thresholds.size, np.nan)
        return pd.DataFrame(
            {
                "threshold": thresholds,
                "spread": estimates,
                "ci_low": nan,
                "ci_high": nan,
                "n_boot_used": 0,
                "n_boot_undefined": 0,
            }
        )
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
