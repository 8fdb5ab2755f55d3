"""Segment leakage: how well a model's score tells the segments apart *within one label*.

The paper's mechanism is that a pooled model learns the segment instead of the disease: images
of a source where malignancy is common get higher scores whatever they show (its Figure 1). That
leaves a trace anyone can measure without knowing the shortcut: among benign images alone, the
score should not separate one segment from another. For each label and each pair of segments
(a, b), the leakage AUC is the Mann-Whitney AUC of "segment a" against "segment b" using the
score, on images of that label only: 0.5 means the score carries no segment information there.

What it does not prove: a shift can also come from real differences between the populations
(older patients, denser breasts, another case mix within "benign"). It is a measure of how much
segment information the score carries, not of its cause.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from segeval._kernels import AUCKernel, Weights
from segeval.bootstrap import Resample, Resampler, bootstrap_distribution
from segeval.segments import Segments, as_segments
from segeval.significance import holm, p_value_from_bootstrap
from segeval.validation import (
    SeedLike,
    check_consistent_length,
    check_labels,
    check_level,
    check_scores,
    warn_undefined,
)

LABEL_NAMES = {0: "benign", 1: "malignant"}
PAIR_COLUMNS = (
    "label",
    "segment_a",
    "segment_b",
    "n_a",
    "n_b",
    "auc",
    "ci_low",
    "ci_high",
    "p_value",
    "p_value_holm",
)


class PairwiseSegmentAUC:
    """For one label, the AUC of segment a against segment b by score, for every pair (a < b).

    A bootstrap statistic (see :mod:`segeval._kernels`): called with row weights of the whole
    set, it returns one AUC per pair, NaN where a resample leaves a segment of the pair empty.
    Pairs with no image of the label in one of the segments are left out.
    """

    def __init__(
        self,
        y_true: NDArray[np.int8],
        y_score: NDArray[np.float64],
        segments: Segments,
        label: int,
    ) -> None:
        of_label = y_true == label
        rows = [np.flatnonzero(of_label & (segments.codes == k)) for k in range(len(segments))]
        present = [k for k, r in enumerate(rows) if r.size]
        self.pairs: list[tuple[str, str, int, int]] = []
        self._parts: list[tuple[AUCKernel, NDArray[np.intp]]] = []
        for i, a in enumerate(present):
            for b in present[i + 1 :]:
                idx = np.concatenate([rows[a], rows[b]])
                is_a = np.zeros(idx.size, dtype=np.int8)
                is_a[: rows[a].size] = 1
                self._parts.append((AUCKernel(is_a, y_score[idx]), idx))
                names = segments.names
                self.pairs.append((names[a], names[b], rows[a].size, rows[b].size))

    def __call__(self, w: Weights, total: float | None = None) -> NDArray[np.float64]:
        return np.array([kernel(w[idx]) for kernel, idx in self._parts], dtype=np.float64)


@dataclass(frozen=True)
class LeakageSummary:
    """The pair of segments the score separates best within one label."""

    label: str
    segment_a: str
    segment_b: str
    auc: float
    ci_low: float
    ci_high: float
    p_value_holm: float

    @property
    def leakage(self) -> float:
        """|AUC − 0.5|: 0 when the score carries no segment information, 0.5 at most."""
        return abs(self.auc - 0.5)

    def __str__(self) -> str:
        return (
            f"{self.label}: {self.segment_a} vs {self.segment_b} AUC {self.auc:.3f} "
            f"[{self.ci_low:.3f}, {self.ci_high:.3f}], Holm p {self.p_value_holm:.2g}"
        )


@dataclass(frozen=True)
class LeakageResult:
    """Segment leakage of one model's scores.

    Attributes
    ----------
    pairs : DataFrame
        One row per (label, segment pair): the AUC of ``segment_a`` against ``segment_b`` by
        score, its percentile CI, the bootstrap p-value against 0.5 and its Holm adjustment
        (over the pairs of that label).
    benign, malignant : LeakageSummary or None
        The pair with the largest |AUC − 0.5| for that label (None when fewer than two segments
        hold images of it). ``benign.leakage`` is the model's summary number.
    """

    pairs: pd.DataFrame
    benign: LeakageSummary | None
    malignant: LeakageSummary | None

    def __repr__(self) -> str:
        return f"LeakageResult(benign={self.benign}, malignant={self.malignant})"


def segment_leakage(
    y_true: ArrayLike,
    y_score: ArrayLike,
    segments: Segments | pd.DataFrame | pd.Series | ArrayLike,
    *,
    n_boot: int = 2000,
    ci: float = 0.95,
    resample: Resample = "rows",
    clusters: ArrayLike | None = None,
    seed: SeedLike = 0,
    n_jobs: int | None = None,
) -> LeakageResult:
    """How well the score separates the segments among images of the same label.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0/1 labels.
    y_score : array-like of shape (n,)
        Scores of one model.
    segments : Segments, DataFrame, Series or array-like
        The segment of each row.
    n_boot, ci, resample, clusters, seed, n_jobs
        The bootstrap, as in :func:`segeval.bootstrap_auc`; every pair is evaluated on the same
        resamples.

    Returns
    -------
    LeakageResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400)
    >>> seg = np.repeat(["A", "B"], 200)
    >>> score = 0.3 * y + 0.2 * (seg == "B") + 0.3 * rng.random(400)
    >>> r = segment_leakage(y, score, seg, n_boot=200)
    >>> r.benign.segment_a, r.benign.segment_b, r.benign.auc < 0.2
    ('A', 'B', True)
    """
    y = check_labels(y_true)
    s = check_scores(y_score)
    check_consistent_length(("y_true", y.size), ("y_score", s.size))
    ci = check_level(ci, "ci")
    seg = as_segments(segments, y.size)
    stats = {label: PairwiseSegmentAUC(y, s, seg, label) for label in LABEL_NAMES}
    resampler = Resampler(y, resample=resample, clusters=clusters)
    estimates, draws = bootstrap_distribution(
        list(stats.values()), resampler, n_boot=n_boot, seed=seed, n_jobs=n_jobs
    )
    rows, summaries, start = [], {}, 0
    alpha = (1 - ci) / 2
    for label, stat in stats.items():
        stop = start + len(stat.pairs)
        block = []
        for k in range(start, stop):
            valid = draws[:, k][~np.isnan(draws[:, k])]
            low, high = np.quantile(valid, [alpha, 1 - alpha]) if valid.size else (np.nan,) * 2
            sd = float(np.std(valid, ddof=1)) if valid.size > 1 else float("nan")
            block.append((float(estimates[k]), float(low), float(high), sd))
        p = [p_value_from_bootstrap(est - 0.5, sd) for est, _, _, sd in block]
        p_holm = holm(p) if p else np.array([])
        for (a, b, n_a, n_b), (est, low, high, _), pv, ph in zip(
            stat.pairs, block, p, p_holm, strict=True
        ):
            rows.append((LABEL_NAMES[label], a, b, n_a, n_b, est, low, high, pv, float(ph)))
        summaries[label] = _worst_pair(LABEL_NAMES[label], rows[len(rows) - len(block) :])
        start = stop
    return LeakageResult(
        pairs=pd.DataFrame(rows, columns=list(PAIR_COLUMNS)),
        benign=summaries[0],
        malignant=summaries[1],
    )


def _worst_pair(label: str, rows: list[tuple]) -> LeakageSummary | None:
    if not rows:
        warn_undefined(
            f"Segment leakage among {label} images is undefined: fewer than two segments hold "
            f"{label} images."
        )
        return None
    worst = max(rows, key=lambda r: abs(r[5] - 0.5) if np.isfinite(r[5]) else -1.0)
    _, a, b, _, _, auc, low, high, _, p_holm = worst
    return LeakageSummary(label, a, b, auc, low, high, p_holm)
