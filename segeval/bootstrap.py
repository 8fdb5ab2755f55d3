"""Efron bootstrap of AUC, WLL and paired ΔAUC, vectorized over resamples.

How it is fast: a resample is represented by how many times each row was drawn (a count vector).
The statistics are kernels (:mod:`segeval._kernels`) built once from the sorted scores, so each
resample costs O(n) array passes and no sort. Memory is O(n) per worker thread, whatever ``n_boot``.

How it is reproducible: resample ``b`` is drawn from its own generator, spawned as child ``b`` of
``SeedSequence(seed)``. The result is therefore the same for any ``n_jobs``, and the indices behind
it can be replayed with :func:`bootstrap_indices`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from segeval._kernels import AUCKernel, Weights, WLLKernel
from segeval._validation import (
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
from segeval.metrics import DEFAULT_EPS
from segeval.significance import p_value_from_ci, verdict

Resample = Literal["rows", "stratified", "cluster"]
RESAMPLE_SCHEMES: tuple[str, ...] = ("rows", "stratified", "cluster")
Statistic = Callable[[Weights], float | NDArray[np.float64]]


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
            raise ValueError(f"resample must be one of {RESAMPLE_SCHEMES}; got {resample!r}.")
        self.n = y_true.size
        self.scheme = resample
        if resample == "cluster":
            if clusters is None:
                raise ValueError('resample="cluster" needs clusters (for example patient ids).')
            c = np.asarray(clusters)
            if c.ndim != 1:
                raise ValueError(f"clusters must be one-dimensional; got shape {c.shape}.")
            check_consistent_length(("y_true", self.n), ("clusters", c.size))
            _, self.codes = np.unique(c, return_inverse=True)
            self.n_clusters = int(self.codes.max()) + 1
            order = np.argsort(self.codes, kind="stable")
            self.members = np.split(order, np.cumsum(np.bincount(self.codes))[:-1])
        elif clusters is not None:
            raise ValueError(f'clusters are only used with resample="cluster"; got {resample!r}.')
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

    def counts(self, draws: NDArray[np.int64]) -> NDArray[np.int64]:
        """How many times each row is in the resample."""
        if self.scheme == "cluster":
            return np.bincount(draws, minlength=self.n_clusters)[self.codes]
        return np.bincount(draws, minlength=self.n)

    def indices(self, draws: NDArray[np.int64]) -> NDArray[np.int64]:
        """The resample as row indices (for clusters, the member rows of each drawn cluster)."""
        if self.scheme == "cluster":
            return np.concatenate([self.members[k] for k in draws])
        return draws


def _child_generators(seed: SeedLike, n_boot: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in as_seed_sequence(seed).spawn(n_boot)]


def _resolve_n_jobs(n_jobs: int | None, n_boot: int) -> int:
    if n_jobs is None:
        n_jobs = os.cpu_count() or 1
    n_jobs = check_positive_int(n_jobs, "n_jobs")
    return min(n_jobs, n_boot)


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

    A statistic is a function of the row count vector (see :mod:`segeval._kernels`) returning a
    float or a fixed-length array; NaN marks a resample on which it is undefined. Returns the point
    estimates, shape (m,), and the draws, shape (n_boot, m), where m is the total output length.
    Work is split over ``n_jobs`` threads (numpy releases the GIL in the heavy passes); the output
    does not depend on ``n_jobs``.
    """
    n_boot = check_positive_int(n_boot, "n_boot")

    def evaluate(counts: Weights) -> NDArray[np.float64]:
        return np.hstack([stat(counts) for stat in statistics]).astype(np.float64)

    estimates = evaluate(np.ones(resampler.n, dtype=np.int64))
    rngs = _child_generators(seed, n_boot)
    out = np.empty((n_boot, estimates.size))

    def run(block: range) -> None:
        for b in block:
            out[b] = evaluate(resampler.counts(resampler.draw(rngs[b])))
            if progress is not None:
                progress(1)

    workers = _resolve_n_jobs(n_jobs, n_boot)
    blocks = [range(n_boot)[k::workers] for k in range(workers)]
    if workers == 1:
        run(blocks[0])
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, blocks))
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
    for rng in _child_generators(seed, check_positive_int(n_boot, "n_boot")):
        yield resampler.indices(resampler.draw(rng))


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
    estimate: float, draws: NDArray[np.float64], ci: float, *, keep: bool = False
) -> BootstrapResult:
    """Percentile CI and standard error of the defined (non-NaN) bootstrap draws."""
    valid = draws[~np.isnan(draws)]
    n_undefined = draws.size - valid.size
    if valid.size == 0:
        warn_undefined(f"The statistic is undefined on all {draws.size} resamples; no interval.")
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
    y: NDArray[np.int8],
    statistics: Sequence[Statistic],
    *,
    n_boot: int,
    ci: float,
    resample: Resample,
    clusters: ArrayLike | None,
    seed: SeedLike,
    n_jobs: int | None = None,
    return_distribution: bool = False,
) -> list[BootstrapResult]:
    """Bootstrap several scalar statistics of the same rows on the same resamples."""
    resampler = Resampler(y, resample=resample, clusters=clusters)
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
    Resampler(y, resample=resample, clusters=clusters)  # validate before the one-class shortcut
    reason = one_class_reason(y, what)
    if reason:
        return _undefined_result(reason, ci)
    (result,) = bootstrap_statistics(
        y,
        [kernel_factory(y, s)],
        n_boot=n_boot,
        ci=ci,
        resample=resample,
        clusters=clusters,
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
        p_value_bootstrap=_p_value_bootstrap(delta.estimate, delta.se),
        verdict=verdict(delta.ci_low, delta.ci_high, p, alpha=alpha),
        n_boot_used=delta.n_boot_used,
        n_boot_undefined=delta.n_boot_undefined,
        ci=ci,
        distribution=delta.distribution,
    )


def _p_value_bootstrap(delta: float, sd: float) -> float:
    """pROC's bootstrap test: D = Δ / sd(Δ*), two-sided normal p-value."""
    if np.isnan(sd) or np.isnan(delta):
        return float("nan")
    if sd == 0:
        return 1.0 if delta == 0 else 0.0
    return float(2 * norm.sf(abs(delta / sd)))
