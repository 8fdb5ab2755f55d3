"""Operating-point synchronization: do the segments share their OPs at each threshold?

At a threshold t every segment has an operating point (FPR, TPR). If a model behaves alike on all
segments the points coincide; the spread is the largest pairwise Euclidean distance between them in
ROC space (0 = perfectly synchronized, sqrt(2) at most). Its CI comes from the same Efron bootstrap
as the other statistics, resampling the whole evaluated set so segment sizes vary as they would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from segeval.engine import evaluate_part
from segeval.metrics import DEFAULT_THRESHOLDS, check_thresholds
from segeval.op_spread import OPKernel, SpreadStatistic, max_pairwise_distance, spread_table
from segeval.resampling import BootstrapOptions, Resample, Resampler
from segeval.segments import Segments, as_segments
from segeval.validation import (
    SeedLike,
    check_consistent_length,
    check_labels,
    check_scores,
    readable_repr,
)

__all__ = [
    "OPKernel",
    "OPSyncResult",
    "SpreadStatistic",
    "max_pairwise_distance",
    "op_synchronization",
    "spread_table",
]


@dataclass(frozen=True, repr=False)
class OPSyncResult:
    """Per-segment operating points and their spread per threshold.

    ``points``: one row per (segment, threshold) with fpr, tpr, n_pos, n_neg.
    ``spread``: one row per threshold with spread, ci_low, ci_high, n_boot_used, n_boot_undefined.
    ``excluded``: segments left out because one class is absent (their OP is undefined).
    """

    points: pd.DataFrame
    spread: pd.DataFrame
    excluded: tuple[str, ...]

    def __repr__(self) -> str:
        return readable_repr(self)


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
    seg = as_segments(segments, y.size)
    options = BootstrapOptions.make(
        n_boot=n_boot, ci=ci, resample=resample, seed=seed, n_jobs=n_jobs
    )
    Resampler(y, resample=resample, clusters=clusters)  # validates the clusters up front
    part = evaluate_part(
        y,
        {"score": s},
        options=options,
        metrics=(),
        segments=seg,
        thresholds=t,
        clusters=None if clusters is None else np.asarray(clusters),
    )
    spread = part.spreads["score"]
    return OPSyncResult(points=spread.points, spread=spread.table, excluded=spread.excluded)
