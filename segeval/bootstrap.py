"""Efron bootstrap of AUC, WLL and paired ΔAUC, vectorized over resamples.

How it is fast: a resample is represented by how many times each row was drawn (a count vector).
The statistics are kernels (:mod:`segeval._kernels`) built once from the sorted scores, so each
resample costs O(n) array passes and no sort. Memory is O(n) per worker thread, whatever ``n_boot``.

How it is reproducible: resample ``b`` is drawn from its own generator, spawned as child ``b`` of
``SeedSequence(seed)``. The result is therefore the same for any ``n_jobs``, and the indices behind
it can be replayed with :func:`bootstrap_indices`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from segeval._kernels import AUCKernel, Weights, WLLKernel
from segeval.metrics import DEFAULT_EPS
from segeval.significance import p_value_from_bootstrap, p_value_from_ci, verdict
from segeval.validation import (
    InputError,
    SeedLike,
    as_seed_sequence,
    check_consistent_length,
    check_labels,
    check_level,
    check_positive_int,
    check_scores,
    one_class_reason,
    warn_undefined,
)

Resample = Literal["rows", "stratified", "cluster"]
RESAMPLE_SCHEMES: tuple[str, ...] = ("rows", "stratified", "cluster")
# A statistic of row weights and their sum (known to the caller without another pass).
Statistic = Callable[[Weights, float], float | NDArray[np.float64]]


class Resampler:
    """Draws Efron resamples of ``n`` rows under one of three schemes.

    - ``"rows"``: n rows uniformly with replacement (the paper's default);
    - ``"stratified"``: the positives and the negatives resampled separately, keeping both counts
      (pROC's default);
    - ``"cluster"``: whole clusters (patients) drawn with replacement, as many as there are.

    :meth:`draw` returns the raw draws (row indices, or cluster codes for ``"cluster"``); both
    :meth:`counts` and :meth:`indices` are derived from the same draws.
    """

    def __init__(
        self,
        y_true: NDArray[np.int8],
        *,
        resample: str = "rows",
        clusters: ArrayLike | None = None,
    ) -> None:
        if resample not in RESAMPLE_SCHEMES:
            raise InputError(f"resample must be one of {RESAMPLE_SCHEMES}; got {resample!r}.")
        self.n = y_true.size
        self.scheme = resample
        if resample == "cluster":
            if clusters is None:
                raise InputError('resample="cluster" needs clusters (for example patient ids).')
            c = np.asarray(clusters)
            if c.ndim != 1:
                raise InputError(f"clusters must be one-dimensional; got shape {c.shape}.")
            check_consistent_length(("y_true", self.n), ("clusters", c.size))
            _, self.codes = np.unique(c, return_inverse=True)
            self.n_clusters = int(self.codes.max()) + 1
            order = np.argsort(self.codes, kind="stable")
            self.sizes = np.bincount(self.codes)
            self.members = np.split(order, np.cumsum(self.sizes)[:-1])
        elif clusters is not None:
            raise InputError(f'clusters are only used with resample="cluster"; got {resample!r}.')
        if resample == "stratified":
            self.pos = np.flatnonzero(y_true == 1)
            self.neg = np.flatnonzero(y_true == 0)

    def draw(self, rng: np.random.Generator) -> NDArray[np.int64]:
        """One resample's raw draws."""
        if self.scheme == "rows":
            return rng.integers(0, self.n, self.n)
        if self.scheme == "stratified":
            pos = self.pos[rng.integers(0, self.pos.size, self.pos.size)]
            neg = self.neg[rng.integers(0, self.neg.size, self.neg.size)]
            return np.concatenate([pos, neg])
        return rng.integers(0, self.n_clusters, self.n_clusters)

    def counts(self, draws: NDArray[np.int64]) -> NDArray[np.float64]:
        """How many times each row is in the resample (as float64, the kernels' weight type)."""
        if self.scheme == "cluster":
            per_cluster = np.bincount(draws, minlength=self.n_clusters).astype(np.float64)
            return per_cluster[self.codes]
        return np.bincount(draws, minlength=self.n).astype(np.float64)

    def total(self, draws: NDArray[np.int64]) -> float:
        """Number of rows in the resample (the sum of :meth:`counts`)."""
        if self.scheme == "cluster":
            return float(self.sizes[draws].sum())
        return float(draws.size)

    def indices(self, draws: NDArray[np.int64]) -> NDArray[np.int64]:
        """The resample as row indices (for clusters, the member rows of each drawn cluster)."""
        if self.scheme == "cluster":
            return np.concatenate([self.members[k] for k in draws])
        return draws


def _resolve_n_jobs(n_jobs: int | None, n_boot: int) -> int:
    if n_jobs is None:
        n_jobs = os.cpu_count() or 1
    n_jobs = check_positive_int(n_jobs, "n_jobs")
    return min(n_jobs, n_boot)


# Below this many drawn rows (n * n_boot) the work stays in this process: forking workers costs
# about 20 ms, more than a small bootstrap takes.
PARALLEL_MIN_DRAWS = 10_000_000

# The job a forked worker inherits: statistics, resampler and the per-resample seeds. Workers are
# processes, not threads: the many short numpy calls of a resample hold the GIL often enough that
# two threads ran only 1.2x faster than one, where two processes run 1.9x faster.
_JOB: tuple[Sequence[Statistic], Resampler, list[np.random.SeedSequence]] | None = None


def _evaluate(
    statistics: Sequence[Statistic], counts: Weights, total: float
) -> NDArray[np.float64]:
    return np.hstack([stat(counts, total) for stat in statistics]).astype(np.float64)


def _run_block(block: range) -> NDArray[np.float64]:
    assert _JOB is not None
    statistics, resampler, seeds = _JOB
    rows = []
    for b in block:
        draws = resampler.draw(np.random.default_rng(seeds[b]))
        rows.append(_evaluate(statistics, resampler.counts(draws), resampler.total(draws)))
    return np.array(rows)


def _can_fork() -> bool:
    return "fork" in mp.get_all_start_methods() and not mp.current_process().daemon


def bootstrap_distribution(
    statistics: Sequence[Statistic],
    resampler: Resampler,
    *,
    n_boot: int,
    seed: SeedLike,
    n_jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Evaluate statistics on the full data and on ``n_boot`` resamples.

    A statistic is a function of the row count vector and its sum (see :mod:`segeval._kernels`)
    returning a float or a fixed-length array; NaN marks a resample on which it is undefined.
    Returns the point estimates, shape (m,), and the draws, shape (n_boot, m), where m is the
    total output length. Large jobs are split over ``n_jobs`` forked processes; the output does
    not depend on ``n_jobs``. ``progress(k)`` is called as resamples complete.
    """
    global _JOB
    n_boot = check_positive_int(n_boot, "n_boot")
    workers = _resolve_n_jobs(n_jobs, n_boot)
    estimates = _evaluate(statistics, np.ones(resampler.n), float(resampler.n))
    seeds = as_seed_sequence(seed).spawn(n_boot)
    parallel = workers > 1 and resampler.n * n_boot >= PARALLEL_MIN_DRAWS and _can_fork()
    # Blocks small enough for a live progress bar, large enough to amortize the round trips.
    size = max(1, -(-n_boot // (workers * 8)))
    blocks = [range(start, min(start + size, n_boot)) for start in range(0, n_boot, size)]
    out = np.empty((n_boot, estimates.size))
    _JOB = (statistics, resampler, seeds)
    try:
        if parallel:
            context = mp.get_context("fork")
            # Workers inherit the single-threaded BLAS set here: the kernels' dot products are too
            # short to gain from BLAS threads, which would oversubscribe the cores.
            with (
                threadpool_limits(limits=1, user_api="blas"),
                ProcessPoolExecutor(workers, context) as pool,
            ):
                for block, rows in zip(blocks, pool.map(_run_block, blocks), strict=True):
                    out[block.start : block.stop] = rows
                    if progress is not None:
                        progress(len(block))
        else:
            with threadpool_limits(limits=1, user_api="blas"):
                for block in blocks:
                    out[block.start : block.stop] = _run_block(block)
                    if progress is not None:
                        progress(len(block))
    finally:
        _JOB = None
    return estimates, out


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
    resampler = Resampler(y, resample=resample, clusters=clusters)
    for s in as_seed_sequence(seed).spawn(check_positive_int(n_boot, "n_boot")):
        yield resampler.indices(resampler.draw(np.random.default_rng(s)))


@dataclass(frozen=True)
class BootstrapResult:
    """A statistic, its percentile confidence interval and bootstrap standard error."""

    estimate: float
    ci_low: float
    ci_high: float
    se: float
    n_boot_used: int
    n_boot_undefined: int
    ci: float
    distribution: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class DeltaAUCResult:
    """Paired comparison ΔAUC = AUC(b) − AUC(a) on the same resamples."""

    auc_a: BootstrapResult
    auc_b: BootstrapResult
    delta: float
    ci_low: float
    ci_high: float
    se: float
    p_value: float
    p_value_bootstrap: float
    verdict: str
    n_boot_used: int
    n_boot_undefined: int
    ci: float
    distribution: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)


def summarize(
    estimate: float,
    draws: NDArray[np.float64],
    ci: float,
    *,
    keep: bool = False,
    what: str = "The statistic",
) -> BootstrapResult:
    """Percentile CI and standard error of the defined (non-NaN) bootstrap draws.

    ``what`` names the statistic in the warning given when no resample defines it.
    """
    valid = draws[~np.isnan(draws)]
    n_undefined = draws.size - valid.size
    if valid.size == 0:
        warn_undefined(f"{what} is undefined on all {draws.size} resamples; no interval.")
        low = high = se = float("nan")
    else:
        alpha = (1 - ci) / 2
        low, high = (float(v) for v in np.quantile(valid, [alpha, 1 - alpha]))
        se = float(np.std(valid, ddof=1)) if valid.size > 1 else float("nan")
    return BootstrapResult(
        estimate=float(estimate),
        ci_low=low,
        ci_high=high,
        se=se,
        n_boot_used=int(valid.size),
        n_boot_undefined=int(n_undefined),
        ci=ci,
        distribution=draws if keep else None,
    )


def _undefined_result(reason: str, ci: float) -> BootstrapResult:
    nan = warn_undefined(reason)
    return BootstrapResult(nan, nan, nan, nan, 0, 0, ci)


def bootstrap_statistics(
    statistics: Sequence[Statistic],
    resampler: Resampler,
    *,
    n_boot: int,
    ci: float,
    seed: SeedLike,
    n_jobs: int | None = None,
    return_distribution: bool = False,
) -> list[BootstrapResult]:
    """Bootstrap several scalar statistics of the same rows on the same resamples."""
    estimates, draws = bootstrap_distribution(
        statistics, resampler, n_boot=n_boot, seed=seed, n_jobs=n_jobs
    )
    return [
        summarize(est, draws[:, k], ci, keep=return_distribution) for k, est in enumerate(estimates)
    ]


def _bootstrap_one(
    kernel_factory: Callable[[NDArray[np.int8], NDArray[np.float64]], Statistic],
    what: str,
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    probability: bool,
    n_boot: int,
    ci: float,
    resample: Resample,
    clusters: ArrayLike | None,
    seed: SeedLike,
    n_jobs: int | None,
    return_distribution: bool,
) -> BootstrapResult:
    y = check_labels(y_true)
    s = check_scores(y_score, probability=probability)
    check_consistent_length(("y_true", y.size), ("y_score", s.size))
    ci = check_level(ci)
    n_boot = check_positive_int(n_boot, "n_boot")
    resampler = Resampler(y, resample=resample, clusters=clusters)  # validated before the shortcut
    reason = one_class_reason(y, what)
    if reason:
        return _undefined_result(reason, ci)
    (result,) = bootstrap_statistics(
        [kernel_factory(y, s)],
        resampler,
        n_boot=n_boot,
        ci=ci,
        seed=seed,
        n_jobs=n_jobs,
        return_distribution=return_distribution,
    )
    return result


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
        Worker threads; default all cores.
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
    return _bootstrap_one(
        AUCKernel,
        "ROC AUC",
        y_true,
        y_score,
        probability=False,
        n_boot=n_boot,
        ci=ci,
        resample=resample,
        clusters=clusters,
        seed=seed,
        n_jobs=n_jobs,
        return_distribution=return_distribution,
    )


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
    return _bootstrap_one(
        lambda y, s: WLLKernel(y, s, eps),
        "Weighted log loss",
        y_true,
        y_score,
        probability=True,
        n_boot=n_boot,
        ci=ci,
        resample=resample,
        clusters=clusters,
        seed=seed,
        n_jobs=n_jobs,
        return_distribution=return_distribution,
    )


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
    ci = check_level(ci)
    n_boot = check_positive_int(n_boot, "n_boot")
    resampler = Resampler(y, resample=resample, clusters=clusters)
    reason = one_class_reason(y, "ROC AUC")
    if reason:
        nan = float("nan")
        und = _undefined_result(reason, ci)
        return DeltaAUCResult(
            und, und, nan, nan, nan, nan, nan, nan, verdict(nan, nan, nan), 0, 0, ci
        )
    (auc_a, auc_b), draws = bootstrap_distribution(
        [AUCKernel(y, sa), AUCKernel(y, sb)], resampler, n_boot=n_boot, seed=seed, n_jobs=n_jobs
    )
    delta = summarize(auc_b - auc_a, draws[:, 1] - draws[:, 0], ci, keep=return_distribution)
    p = p_value_from_ci(delta.estimate, delta.ci_low, delta.ci_high, level=ci)
    return DeltaAUCResult(
        auc_a=summarize(auc_a, draws[:, 0], ci),
        auc_b=summarize(auc_b, draws[:, 1], ci),
        delta=delta.estimate,
        ci_low=delta.ci_low,
        ci_high=delta.ci_high,
        se=delta.se,
        p_value=p,
        p_value_bootstrap=p_value_from_bootstrap(delta.estimate, delta.se),
        verdict=verdict(delta.ci_low, delta.ci_high, p, alpha=alpha),
        n_boot_used=delta.n_boot_used,
        n_boot_undefined=delta.n_boot_undefined,
        ci=ci,
        distribution=delta.distribution,
    )
