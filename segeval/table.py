"""Global and local (per segment) metrics as one tidy table: a view of the engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from segeval.engine import PartResult, evaluate_part
from segeval.metrics import DEFAULT_EPS
from segeval.resampling import BootstrapOptions, DrawCache, Resample, Resampler
from segeval.segments import Segments, as_segments, with_global
from segeval.validation import (
    InputError,
    SeedLike,
    check_consistent_length,
    check_labels,
    check_scores,
)

TABLE_COLUMNS = ("segment", "n", "n_pos", "n_neg", "prevalence", "wll", "auc")
CI_COLUMNS = ("wll_ci_low", "wll_ci_high", "auc_ci_low", "auc_ci_high", "n_boot_undefined")


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
) -> pd.DataFrame:
    """Global and local WLL and AUC: one row for the whole set (``__global__``), one per segment.

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
        Probability clipping of the WLL.

    Returns
    -------
    pandas.DataFrame
        Columns ``segment, n, n_pos, n_neg, prevalence, wll, auc`` (+ ``wll_ci_low, wll_ci_high,
        auc_ci_low, auc_ci_high, n_boot_undefined`` with a bootstrap) and ``note``: why a metric
        is undefined (empty when defined). Undefined metrics are NaN and warn, naming the segment.

    Examples
    --------
    >>> t = segment_table([0, 1, 0, 1], [0.2, 0.9, 0.4, 0.3], ["A", "A", "B", "B"])
    >>> t[["segment", "n", "auc"]].to_dict("list")
    {'segment': ['__global__', 'A', 'B'], 'n': [4, 2, 2], 'auc': [0.75, 1.0, 0.0]}
    """
    y = check_labels(y_true)
    s = check_scores(y_score, probability=True)
    check_consistent_length(("y_true", y.size), ("y_score", s.size))
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise InputError(f"n_boot must be an integer >= 0; got {n_boot!r}.")
    options = BootstrapOptions.make(
        n_boot=max(int(n_boot), 1), ci=ci, resample=resample, seed=seed, n_jobs=n_jobs
    )
    cl = None if clusters is None else np.asarray(clusters)
    Resampler(y, resample=resample, clusters=cl)  # validates resample and clusters up front
    parts = with_global(None if segments is None else as_segments(segments, y.size), y.size)
    rows, cache = [], DrawCache()
    for name, idx in parts:
        part = evaluate_part(
            y[idx],
            {"score": s[idx]},
            options=options if n_boot > 0 else None,
            clusters=None if cl is None else cl[idx],
            eps=eps,
            name=name,
            cache=cache,
        )
        rows.append(table_row(part, "score", with_ci=n_boot > 0))
    columns = list(TABLE_COLUMNS) + (list(CI_COLUMNS) if n_boot > 0 else []) + ["note"]
    return pd.DataFrame(rows, columns=columns)


def table_row(part: PartResult, model: str, *, with_ci: bool = True) -> dict[str, object]:
    """One row of the table: a model's counts, WLL and AUC (and CIs) on one part."""
    wll, auc = part.metrics["wll", model], part.metrics["auc", model]
    row: dict[str, object] = {
        "segment": part.name,
        "n": part.n,
        "n_pos": part.n_pos,
        "n_neg": part.n - part.n_pos,
        "prevalence": part.n_pos / part.n,
        "wll": wll.estimate,
        "auc": auc.estimate,
    }
    if with_ci:
        row |= {
            "wll_ci_low": wll.ci_low,
            "wll_ci_high": wll.ci_high,
            "auc_ci_low": auc.ci_low,
            "auc_ci_high": auc.ci_high,
            "n_boot_undefined": auc.n_boot_undefined,
        }
    return row | {"note": part.reason or ""}
