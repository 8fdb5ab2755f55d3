"""Segment leakage: how well a model's score tells the segments apart *within one label*.

The paper's mechanism is that a pooled model learns the segment instead of the disease: images
of a source where malignancy is common get higher scores whatever they show (its Figure 1). That
leaves a trace anyone can measure without knowing the shortcut: among benign images alone, the
score should not tell one segment from the others. For each label and each segment, the leakage
AUC is the Mann-Whitney AUC of "this segment" against "the other segments" by score, on images
of that label only: above 0.5, the segment's images score higher than the others' of the same
label; below, lower.

What it measures: a *location shift* of the score between a segment and the rest within a label.
0.5 means no such shift, not that the score carries no segment information: a segment with the
same centre and three times the spread reads about 0.5 (a two-sample Kolmogorov-Smirnov test
would see it). What it does not prove: a shift can also come from real differences between the
populations (older patients, denser breasts, another case mix within "benign"); it measures how
far the score moves with the segment, not why.

The summary per label (the segment farthest from 0.5) is biased upward: the largest of several
noisy values is above 0 even without any shift. Each summary therefore comes with its null
reference: the same statistic with the segments permuted within the label
(:class:`LeakageSummary`).

How it is fast: the kernel (:class:`segeval._kernels.OneVsRestAUC`) gives every segment's AUC
in one pass over the rows, as a single AUC costs. The resamples are the engine's
(:func:`segeval.engine.evaluate_part`): in :func:`segeval.evaluate` leakage is drawn on the same
resamples as every other statistic of the whole set; this module turns the engine's per-segment
results into p-values, Holm's correction and the summaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from segeval._kernels import OneVsRestAUC
from segeval.engine import LeakagePart, PartResult, evaluate_part
from segeval.resampling import BootstrapOptions, Resample, Resampler
from segeval.segments import Segments, as_segments
from segeval.significance import holm, p_value_from_bootstrap
from segeval.validation import (
    SeedLike,
    check_consistent_length,
    check_labels,
    check_scores,
    warn_undefined,
)

__all__ = [
    "LeakageResult",
    "LeakageSummary",
    "OneVsRestAUC",
    "leakage_frames",
    "leakage_over_runs",
    "leakage_result",
    "segment_leakage",
]

LABEL_NAMES = {0: "benign", 1: "malignant"}
COLUMNS = (
    "label",
    "segment",
    "n_segment",
    "n_rest",
    "auc",
    "ci_low",
    "ci_high",
    "p_value",
    "p_value_holm",
)


@dataclass(frozen=True)
class LeakageSummary:
    """The segment the score sets apart most among the images of one label.

    ``leakage`` = |AUC − 0.5| of that segment is biased upward: the largest of several noisy
    values, it is above 0 even when no segment is set apart. ``null_mean`` and ``null_q95`` are
    its mean and 95th percentile with the segments permuted within the label (the same images
    and sizes, no segment information), and ``p_null`` the permutation p-value of ``leakage``
    against them: read ``leakage`` against ``null_q95``, not against 0.
    """

    label: str
    segment: str
    auc: float
    ci_low: float
    ci_high: float
    p_value_holm: float
    null_mean: float = float("nan")
    null_q95: float = float("nan")
    p_null: float = float("nan")

    @property
    def leakage(self) -> float:
        """|AUC − 0.5|: how far the segment's scores are shifted from the others' (0.5 at most)."""
        return abs(self.auc - 0.5)

    def __str__(self) -> str:
        return (
            f"{self.label}: {self.segment} vs the rest AUC {self.auc:.3f} "
            f"[{self.ci_low:.3f}, {self.ci_high:.3f}], Holm p {self.p_value_holm:.2g}, "
            f"|AUC - 0.5| {self.leakage:.3f} against a null 95th percentile of "
            f"{self.null_q95:.3f} (permutation p {self.p_null:.2g})"
        )


@dataclass(frozen=True)
class LeakageResult:
    """Segment leakage of one model's scores.

    Attributes
    ----------
    table : DataFrame
        One row per (label, segment): the AUC of the segment against the other segments by
        score among images of that label, its percentile CI, the bootstrap p-value against 0.5
        and its Holm adjustment over the segments of that label.
    benign, malignant : LeakageSummary or None
        The segment farthest from 0.5 for that label (None when fewer than two segments hold
        images of it). ``benign.leakage`` is the model's summary number.
    """

    table: pd.DataFrame
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
    """How well the score tells each segment from the others among images of the same label.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0/1 labels.
    y_score : array-like of shape (n,)
        Scores of one model.
    segments : Segments, DataFrame, Series or array-like
        The segment of each row.
    n_boot, ci, resample, clusters, seed, n_jobs
        The bootstrap, as in :func:`segeval.bootstrap_auc`; every segment and both labels are
        evaluated on the same resamples.

    Returns
    -------
    LeakageResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 600)
    >>> seg = np.repeat(["A", "B", "C"], 200)
    >>> score = 0.3 * y + 0.2 * (seg == "C") + 0.3 * rng.random(600)
    >>> r = segment_leakage(y, score, seg, n_boot=200)
    >>> r.benign.segment, r.benign.auc > 0.8
    ('C', True)
    """
    y = check_labels(y_true)
    s = check_scores(y_score)
    check_consistent_length(("y_true", y.size), ("y_score", s.size))
    options = BootstrapOptions.make(
        n_boot=n_boot, ci=ci, resample=resample, seed=seed, n_jobs=n_jobs
    )
    Resampler(y, resample=resample, clusters=clusters)  # validates the clusters up front
    part = evaluate_part(
        y,
        {"score": s},
        options=options,
        metrics=(),
        segments=as_segments(segments, y.size),
        leakage=True,
        clusters=None if clusters is None else np.asarray(clusters),
    )
    return leakage_result(part.leakage["score"])


def _null(observed: float, null: NDArray[np.float64] | None) -> tuple[float, float, float]:
    """Mean and 95th percentile of the permutation null, and the permutation p-value."""
    if null is None or not null.size or not np.isfinite(observed):
        return float("nan"), float("nan"), float("nan")
    p = (1 + int(np.sum(null >= observed - 1e-12))) / (null.size + 1)
    return float(null.mean()), float(np.quantile(null, 0.95)), float(p)


def leakage_result(labels: Mapping[int, LeakagePart]) -> LeakageResult:
    """One model's leakage from the engine's per-label results: p-values against 0.5, Holm over
    the segments of each label, and the segment farthest from 0.5 per label."""
    rows: list[tuple[Any, ...]] = []
    summaries: dict[int, LeakageSummary | None] = {}
    for label, part in labels.items():
        name = LABEL_NAMES[label]
        if not part.results:
            warn_undefined(
                f"Segment leakage among {name} images is undefined: fewer than two segments "
                f"hold {name} images."
            )
            summaries[label] = None
            continue
        p = [p_value_from_bootstrap(r.estimate - 0.5, r.se) for r in part.results]
        n_label = sum(part.sizes)
        mine = [
            (name, seg_name, n, n_label - n, r.estimate, r.ci_low, r.ci_high, pv, ph)
            for seg_name, n, r, pv, ph in zip(
                part.segments, part.sizes, part.results, p, holm(p), strict=True
            )
        ]
        rows += mine
        worst = max(mine, key=lambda r: abs(r[4] - 0.5) if np.isfinite(r[4]) else -1.0)
        summaries[label] = LeakageSummary(
            name, worst[1], *worst[4:7], float(worst[8]), *_null(abs(worst[4] - 0.5), part.null)
        )
    return LeakageResult(
        table=pd.DataFrame(rows, columns=list(COLUMNS)),
        benign=summaries[0],
        malignant=summaries[1],
    )


SUMMARY_COLUMNS = [
    "model",
    "on",
    "label",
    "segment",
    "auc",
    "ci_low",
    "ci_high",
    "p_value_holm",
    "leakage",
    "null_mean",
    "null_q95",
    "p_null",
]


def leakage_frames(
    parts: Mapping[str, Mapping[int, LeakagePart]] | PartResult, *, on: str = "evaluated set"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model's leakage table (one row per model, label and segment) and its summary (the
    segment farthest from 0.5, per model and label), from the engine's leakage of one part;
    ``on`` names the images (column ``on``)."""
    leakage = parts.leakage if isinstance(parts, PartResult) else parts
    tables, summary = [], []
    for model, labels in leakage.items():
        r = leakage_result(labels)
        tables.append(r.table.assign(model=model, on=on))
        summary += [
            (
                model,
                on,
                w.label,
                w.segment,
                w.auc,
                w.ci_low,
                w.ci_high,
                w.p_value_holm,
                w.leakage,
                w.null_mean,
                w.null_q95,
                w.p_null,
            )
            for w in (r.benign, r.malignant)
            if w is not None
        ]
    columns = ["model", "on", *COLUMNS]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    return table[columns], pd.DataFrame(summary, columns=SUMMARY_COLUMNS)


RUNS_SUMMARY_COLUMNS = [
    "model",
    "on",
    "label",
    "n_runs",
    "leakage_mean",
    "leakage_min",
    "leakage_max",
    "n_runs_significant",
    "null_q95_mean",
    "segments",
]


def leakage_over_runs(
    summary: pd.DataFrame,
    recipes: Mapping[str, Sequence[tuple[str, str]]],
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The leakage summary of each model over its runs (training seeds), per label.

    ``summary`` is the per-run summary of :func:`leakage_frames` (runs as evaluated models);
    ``recipes`` maps a model to its (run, evaluated model) pairs. Per model and label: the mean,
    least and largest ``|AUC − 0.5|`` over the runs, how many runs set a segment apart
    (``p_value_holm < alpha``), the mean over the runs of the permutation null's 95th percentile
    (``null_q95_mean``: what the leakage reaches without any shift), and the segments farthest
    from 0.5 with how many runs each, most frequent first (``"(S4, Mc) ×3; (S5, Mc) ×2"``).
    """
    rows = []
    for recipe, pairs in recipes.items():
        runs = [m for _, m in pairs]
        mine = summary[summary.model.isin(runs)]
        for (on, label), group in mine.groupby(["on", "label"], sort=True):
            leak = group.leakage.to_numpy(np.float64)
            defined = leak[~np.isnan(leak)]
            counts = group.segment.value_counts()
            rows.append(
                (
                    recipe,
                    on,
                    label,
                    len(group),
                    float(defined.mean()) if defined.size else np.nan,
                    float(defined.min()) if defined.size else np.nan,
                    float(defined.max()) if defined.size else np.nan,
                    int((group.p_value_holm < alpha).sum()),
                    float(group.null_q95.mean()),
                    "; ".join(f"{s} ×{n}" for s, n in counts.items()),
                )
            )
    return pd.DataFrame(rows, columns=RUNS_SUMMARY_COLUMNS)
