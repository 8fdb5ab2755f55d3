"""Efron bootstrap of AUC, WLL and paired ΔAUC: views of the evaluation engine.

Each function validates its arguments, then asks :func:`segeval.engine.evaluate_part` for its
statistic, so its numbers are those of :func:`segeval.evaluate` by construction. The machinery
(resampling schemes, named statistics, percentile summaries) is in :mod:`segeval.resampling`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike, NDArray

from segeval.engine import DeltaAUCResult, evaluate_part, resample_indices
from segeval.metrics import DEFAULT_EPS
from segeval.registry import AUC, WLL
from segeval.resampling import (
    RESAMPLE_SCHEMES,
    BootstrapOptions,
    BootstrapResult,
    Resample,
    Resampler,
    summarize,
)
from segeval.validation import (
    SeedLike,
    check_consistent_length,
    check_labels,
    check_scores,
)

__all__ = [
    "RESAMPLE_SCHEMES",
    "BootstrapOptions",
    "BootstrapResult",
    "DeltaAUCResult",
    "Resample",
    "Resampler",
    "bootstrap_auc",
    "bootstrap_delta_auc",
    "bootstrap_indices",
    "bootstrap_wll",
    "summarize",
]


def bootstrap_indices(
    y_true: ArrayLike,
    *,
    n_boot: int = 2000,
    resample: Resample = "rows",
    clusters: ArrayLike | None = None,
    seed: SeedLike = 0,
) -> Iterator[NDArray[np.int64]]:
    """Yield the row indices of each resample, exactly those behind the bootstrap functions.

    Useful to bootstrap a custom statistic, or to check a result by brute force.

    Examples
    --------
    >>> idx = next(bootstrap_indices([0, 1, 0, 1], n_boot=1, seed=0))
    >>> idx.shape
    (4,)
    """
    y = check_labels(y_true)
    options = BootstrapOptions.make(n_boot=n_boot, resample=resample, seed=seed)
    yield from resample_indices(y, options=options, clusters=clusters)


def _options(
    n_boot: int,
    ci: float,
    resample: str,
    clusters: ArrayLike | None,
    seed: SeedLike,
    n_jobs: int | None,
    y: NDArray[np.int8],
    alpha: float = 0.05,
) -> tuple[BootstrapOptions, NDArray[np.generic] | None]:
    options = BootstrapOptions.make(
        n_boot=n_boot, ci=ci, resample=resample, seed=seed, n_jobs=n_jobs, alpha=alpha
    )
    Resampler(y, resample=resample, clusters=clusters)  # validates the clusters up front
    return options, None if clusters is None else np.asarray(clusters)


def bootstrap_auc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    n_boot: int = 2000,
    ci: float = 0.95,
    resample: Resample = "rows",
    clusters: ArrayLike | None = None,
    seed: SeedLike = 0,
    n_jobs: int | None = None,
    return_distribution: bool = False,
) -> BootstrapResult:
    """ROC AUC with an Efron bootstrap percentile confidence interval.

    Parameters
    ----------
    y_true, y_score : array-like of shape (n,)
        Labels in {0, 1} and scores.
    n_boot : int, default 2000
        Number of resamples (the paper uses 2000).
    ci : float, default 0.95
        Confidence level of the percentile interval.
    resample : {"rows", "stratified", "cluster"}, default "rows"
        Uniform over rows (the paper), per class (pROC), or whole clusters (patients).
    clusters : array-like of shape (n,), optional
        Cluster id of each row, for ``resample="cluster"``.
    seed : int, Generator, SeedSequence or None, default 0
        The same seed gives bit-identical results, for any ``n_jobs``.
    n_jobs : int, optional
        Worker processes; default all cores.
    return_distribution : bool, default False
        Keep the per-resample values (NaN where a resample had one class).

    Returns
    -------
    BootstrapResult
        Resamples with one class only are excluded and counted in ``n_boot_undefined``.

    Examples
    --------
    >>> r = bootstrap_auc([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.7, 0.6, 0.65, 0.9], n_boot=200)
    >>> round(r.estimate, 3), r.ci_low <= r.estimate <= r.ci_high
    (0.889, True)
    """
    y = check_labels(y_true)
    s = check_scores(y_score)
    check_consistent_length(("y_true", y.size), ("y_score", s.size))
    options, cl = _options(n_boot, ci, resample, clusters, seed, n_jobs, y)
    part = evaluate_part(
        y, {"score": s}, options=options, metrics=(AUC,), clusters=cl, keep=return_distribution
    )
    return part.metrics["auc", "score"]


def bootstrap_wll(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    eps: float = DEFAULT_EPS,
    n_boot: int = 2000,
    ci: float = 0.95,
    resample: Resample = "rows",
    clusters: ArrayLike | None = None,
    seed: SeedLike = 0,
    n_jobs: int | None = None,
    return_distribution: bool = False,
) -> BootstrapResult:
    """Weighted log loss with a bootstrap percentile CI; options as in :func:`bootstrap_auc`.

    The class weights are re-estimated on each resample, as the definition requires.
    """
    y = check_labels(y_true)
    s = check_scores(y_score, probability=True)
    check_consistent_length(("y_true", y.size), ("y_score", s.size))
    options, cl = _options(n_boot, ci, resample, clusters, seed, n_jobs, y)
    part = evaluate_part(
        y,
        {"score": s},
        options=options,
        metrics=(WLL,),
        clusters=cl,
        eps=eps,
        keep=return_distribution,
    )
    return part.metrics["wll", "score"]


def bootstrap_delta_auc(
    y_true: ArrayLike,
    score_a: ArrayLike,
    score_b: ArrayLike,
    *,
    n_boot: int = 2000,
    ci: float = 0.95,
    resample: Resample = "rows",
    clusters: ArrayLike | None = None,
    seed: SeedLike = 0,
    n_jobs: int | None = None,
    alpha: float = 0.05,
    return_distribution: bool = False,
) -> DeltaAUCResult:
    """Paired bootstrap of ΔAUC = AUC(b) − AUC(a): both models are scored on the same resamples.

    ``p_value`` is the paper's (Altman & Bland from the percentile CI); ``p_value_bootstrap`` is
    pROC's ``roc.test(method="bootstrap")``: D = Δ / sd(Δ*), p = 2Φ(−|D|). ``verdict`` follows the
    paper, using ``p_value`` and ``alpha``. Options as in :func:`bootstrap_auc`.

    Examples
    --------
    >>> y = [0, 0, 0, 1, 1, 1, 0, 1]
    >>> a = [.2, .6, .3, .4, .7, .5, .1, .8]
    >>> b = [.1, .2, .3, .7, .8, .6, .4, .9]
    >>> r = bootstrap_delta_auc(y, a, b,
    ...                         n_boot=500)
    >>> round(r.delta, 4), r.verdict
    (0.125, 'not significant')
    """
    y = check_labels(y_true)
    sa = check_scores(score_a, "score_a")
    sb = check_scores(score_b, "score_b")
    check_consistent_length(("y_true", y.size), ("score_a", sa.size), ("score_b", sb.size))
    options, cl = _options(n_boot, ci, resample, clusters, seed, n_jobs, y, alpha)
    part = evaluate_part(
        y,
        {"a": sa, "b": sb},
        options=options,
        metrics=(AUC,),
        baseline="a",
        clusters=cl,
        keep=return_distribution,
    )
    return part.comparisons["b"]
