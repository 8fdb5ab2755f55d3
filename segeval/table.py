"""Global and local (per segment) metrics as one tidy table: a view of the engine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from segeval.engine import PartResult, evaluate_part
from segeval.metrics import DEFAULT_EPS, DEFAULT_THRESHOLDS
from segeval.registry import MetricSpec, resolve_metrics
from segeval.resampling import BootstrapOptions, DrawCache, Resample, Resampler
from segeval.segments import Segments, as_segments, with_global
from segeval.validation import (
    InputError,
    SeedLike,
    check_consistent_length,
    check_labels,
    check_scores,
)

COUNT_COLUMNS = ("segment", "n", "n_pos", "n_neg", "prevalence")


def table_columns(specs: Sequence[MetricSpec], *, with_ci: bool = True) -> list[str]:
    """The columns of the table for these metrics: counts, values, then intervals and note."""
    values = [spec.name for spec in specs]
    intervals = [f"{spec.name}_ci_{end}" for spec in specs for end in ("low", "high")]
    ci = [*intervals, "n_boot_undefined"] if with_ci else []
    return [*COUNT_COLUMNS, *values, *ci, "note"]


def segment_table(
    y_true: ArrayLike,
    y_score: ArrayLike,
    segments: Segments | pd.DataFrame | ArrayLike | None = None,
    *,
    n_boot: int = 0,
    ci: float = 0.95,
    resample: Resample = "rows",
    clusters: ArrayLike | None = None,
    seed: SeedLike = 0,
    eps: float = DEFAULT_EPS,
    n_jobs: int | None = None,
    metrics: str | Sequence[str] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> pd.DataFrame:
    """Global and local metrics: one row for the whole set (``__global__``), one per segment.

    Parameters
    ----------
    y_true, y_score : array-like of shape (n,)
        Labels in {0, 1} and probabilities of label 1.
    segments : Segments, DataFrame of segment columns, or one label per row, optional
        See :func:`segeval.segment_keys`. None gives the global row only.
    n_boot : int, default 0
        With ``n_boot > 0``, bootstrap CIs of WLL and AUC are added. Each segment is resampled on
        its own (the paper's local evaluation), from the same ``seed``, so a segment's interval
        equals :func:`bootstrap_auc` on that segment alone.
    ci, resample, clusters, seed, n_jobs
        As in :func:`segeval.bootstrap_auc`.
    eps : float
        Probability clipping of the WLL and the calibration metrics.
    metrics : list of str, optional
        Metric names of the registry (:mod:`segeval.registry`), e.g. ``["auc",
        "sens@spec=0.9"]``; default WLL and AUC. ``"ppv"`` or ``"npv"`` alone: one per
        ``thresholds``.

    Returns
    -------
    pandas.DataFrame
        Columns ``segment, n, n_pos, n_neg, prevalence``, one column per metric (default ``wll,
        auc``), with a bootstrap ``<metric>_ci_low, <metric>_ci_high`` per metric and
        ``n_boot_undefined``, and ``note``: why a metric is undefined (empty when defined).
        Undefined metrics are NaN and warn, naming the segment.

    Examples
    --------
    >>> t = segment_table([0, 1, 0, 1], [0.2, 0.9, 0.4, 0.3], ["A", "A", "B", "B"])
    >>> t[["segment", "n", "auc"]].to_dict("list")
    {'segment': ['__global__', 'A', 'B'], 'n': [4, 2, 2], 'auc': [0.75, 1.0, 0.0]}
    """
    y = check_labels(y_true)
    s = check_scores(y_score)
    check_consistent_length(("y_true", y.size), ("y_score", s.size))
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise InputError(f"n_boot must be an integer >= 0; got {n_boot!r}.")
    options = BootstrapOptions.make(
        n_boot=max(int(n_boot), 1), ci=ci, resample=resample, seed=seed, n_jobs=n_jobs
    )
    specs = resolve_metrics(metrics, thresholds=thresholds)
    if any(spec.probability for spec in specs):
        check_scores(s, probability=True)
    cl = None if clusters is None else np.asarray(clusters)
    Resampler(y, resample=resample, clusters=cl)  # validates resample and clusters up front
    parts = with_global(None if segments is None else as_segments(segments, y.size), y.size)
    rows, cache = [], DrawCache()
    for name, idx in parts:
        part = evaluate_part(
            y[idx],
            {"score": s[idx]},
            options=options if n_boot > 0 else None,
            metrics=specs,
            clusters=None if cl is None else cl[idx],
            eps=eps,
            name=name,
            cache=cache,
        )
        rows.append(table_row(part, "score", specs, with_ci=n_boot > 0))
    return pd.DataFrame(rows, columns=table_columns(specs, with_ci=n_boot > 0))


def table_row(
    part: PartResult, model: str, specs: Sequence[MetricSpec], *, with_ci: bool = True
) -> dict[str, object]:
    """One row of the table: a model's counts and metrics (and CIs) on one part."""
    results = [part.metrics[spec.name, model] for spec in specs]
    row: dict[str, object] = {
        "segment": part.name,
        "n": part.n,
        "n_pos": part.n_pos,
        "n_neg": part.n - part.n_pos,
        "prevalence": part.n_pos / part.n,
    }
    row |= {spec.name: r.estimate for spec, r in zip(specs, results, strict=True)}
    if with_ci:
        for spec, r in zip(specs, results, strict=True):
            row |= {f"{spec.name}_ci_low": r.ci_low, f"{spec.name}_ci_high": r.ci_high}
        row["n_boot_undefined"] = max((r.n_boot_undefined for r in results), default=0)
    return row | {"note": part.reason or part.notes.get(model, "")}
