"""The Efron bootstrap machinery: resampling schemes, named statistics, percentile summaries.

How it is fast: a resample is represented by how many times each row was drawn (a count vector).
The statistics are kernels (:mod:`segeval._kernels`) built once from the sorted scores, so each
resample costs O(n) array passes and no sort. Memory is O(n) per worker, whatever ``n_boot``.

How it is reproducible: resample ``b`` is drawn from its own generator, child ``b`` of the seed's
SeedSequence, derived without mutating it (``SeedSequence.spawn`` would). The result is the same
for any ``n_jobs`` and for the same seed object passed twice, and the indices behind it can be
replayed with :func:`segeval.bootstrap_indices`.

Statistics are *named*: :func:`bootstrap_distribution` takes a mapping name -> statistic and
returns :class:`Draws`, read by name. No caller computes column positions.

No module-level mutable state: the work given to forked worker processes travels as the pool's
initializer argument and lives only in the workers.
"""

from __future__ import annotations

import decimal
import multiprocessing as mp
import os
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from segeval._kernels import Weights
from segeval.significance import VERDICT_RULES, verdict
from segeval.validation import (
    InputError,
    SeedLike,
    as_seed_sequence,
    check_consistent_length,
    check_level,
    check_positive_int,
    readable_repr,
    warn_undefined,
)

Resample = Literal["rows", "stratified", "cluster", "poisson"]
RESAMPLE_SCHEMES: tuple[str, ...] = ("rows", "stratified", "cluster", "poisson")
# A statistic of row weights and their sum (known to the caller without another pass).
Statistic = Callable[[Weights, float], float | NDArray[np.float64]]


@dataclass(frozen=True, repr=False)
class BootstrapOptions:
    """How to bootstrap, validated once: every part of an evaluation shares these options.

    ``seed`` is converted once to a SeedSequence, which is never mutated, so every part (the
    whole set, each segment) draws its resamples from the same stream.
    """

    n_boot: int = 2000
    ci: float = 0.95
    resample: Resample = "rows"
    seed: np.random.SeedSequence = field(default_factory=lambda: np.random.SeedSequence(0))
    n_jobs: int | None = None
    alpha: float = 0.05
    verdict_rule: str = "paper"

    @classmethod
    def make(
        cls,
        *,
        n_boot: int = 2000,
        ci: float = 0.95,
        resample: str = "rows",
        seed: SeedLike = 0,
        n_jobs: int | None = None,
        alpha: float = 0.05,
        verdict_rule: str = "paper",
    ) -> BootstrapOptions:
        """Validate every option and return them frozen."""
        if resample not in RESAMPLE_SCHEMES:
            raise InputError(f"resample must be one of {RESAMPLE_SCHEMES}; got {resample!r}.")
        if n_jobs is not None:
            check_positive_int(n_jobs, "n_jobs")
        if verdict_rule not in VERDICT_RULES:
            raise InputError(
                f"verdict_rule must be one of {', '.join(VERDICT_RULES)}; got {verdict_rule!r}."
            )
        return cls(
            n_boot=check_positive_int(n_boot, "n_boot"),
            ci=check_level(ci),
            resample=resample,  # type: ignore[arg-type]
            seed=as_seed_sequence(seed),
            n_jobs=n_jobs,
            alpha=check_level(alpha, "alpha"),
            verdict_rule=verdict_rule,
        )

    def verdict(self, ci_low: float, ci_high: float, p_value: float) -> str:
        """The verdict of a difference under these options' alpha and rule."""
        return verdict(ci_low, ci_high, p_value, alpha=self.alpha, rule=self.verdict_rule)

    def __repr__(self) -> str:
        return readable_repr(self)


def child_seeds(seed: np.random.SeedSequence, n: int) -> list[np.random.SeedSequence]:
    """Children 0..n-1 of ``seed``, as ``seed.spawn(n)`` on a fresh one, without mutating it."""
    return [
        np.random.SeedSequence(
            seed.entropy, spawn_key=(*seed.spawn_key, b), pool_size=seed.pool_size
        )
        for b in range(n)
    ]


class Resampler:
    """Draws resamples of ``n`` rows under one of four schemes.

    - ``"rows"``: n rows uniformly with replacement (the paper's default);
    - ``"stratified"``: the positives and the negatives resampled separately, keeping both counts
      (pROC's default);
    - ``"cluster"``: whole clusters (patients) drawn with replacement, as many as there are;
    - ``"poisson"``: each unit (row, or cluster when ``clusters`` are given) weighted by a
      Poisson(1) count that is a function of (hash of its id, resample, seed) alone
      (:func:`poisson_counts`), so any order or partitioning of the rows gives the same counts.

    :meth:`draw` returns the raw draws (row indices, or cluster codes for ``"cluster"``); both
    :meth:`counts` and :meth:`indices` are derived from the same draws. The Poisson scheme has
    no draws: :meth:`poisson_block` gives its counts directly.
    """

    def __init__(
        self,
        y_true: NDArray[np.int8],
        *,
        resample: str = "rows",
        clusters: ArrayLike | None = None,
        ids: ArrayLike | None = None,
    ) -> None:
        if resample not in RESAMPLE_SCHEMES:
            raise InputError(f"resample must be one of {RESAMPLE_SCHEMES}; got {resample!r}.")
        self.n = y_true.size
        self.scheme = resample
        self.hashes: NDArray[np.uint64] | None = None
        if resample == "poisson":
            # The unit of a Poisson weight: the cluster, else the row's id, else its position.
            units = clusters if clusters is not None else ids
            u = np.arange(self.n) if units is None else np.asarray(units)
            if u.ndim != 1:
                raise InputError(f"unit ids must be one-dimensional; got shape {u.shape}.")
            check_consistent_length(("y_true", self.n), ("unit ids", u.size))
            self.hashes = unit_hashes(u)
            clusters = None
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
        self.order: NDArray[np.int64] | None = None  # rows of the local draws, when not 0..n-1
        self.key: tuple[Any, ...] = (resample, self.n)
        if resample == "stratified":
            self.pos = np.flatnonzero(y_true == 1)
            self.neg = np.flatnonzero(y_true == 0)
            self.order = np.concatenate([self.pos, self.neg])
            self.key = (resample, self.pos.size, self.neg.size)
        elif resample == "cluster":
            self.key = (resample, self.n_clusters)

    def poisson_block(self, seed: int, block: range) -> NDArray[np.float64]:
        """Poisson counts of the resamples in ``block``: shape (len(block), n)."""
        assert self.hashes is not None, 'only resample="poisson" has Poisson counts'
        return poisson_counts(self.hashes, seed, block)

    def local_draw(self, rng: np.random.Generator) -> NDArray[np.int64]:
        """One resample's draws, which depend only on ``key`` and the generator.

        Rows (0..n-1), cluster codes, or for ``"stratified"`` positions in the positives then the
        negatives (mapped to rows by ``order``).
        """
        if self.scheme == "rows":
            return rng.integers(0, self.n, self.n)
        if self.scheme == "stratified":
            pos = rng.integers(0, self.pos.size, self.pos.size)
            neg = self.pos.size + rng.integers(0, self.neg.size, self.neg.size)
            return np.concatenate([pos, neg])
        return rng.integers(0, self.n_clusters, self.n_clusters)

    def draw(self, rng: np.random.Generator) -> NDArray[np.int64]:
        """One resample's raw draws (row indices, or cluster codes for ``"cluster"``)."""
        local = self.local_draw(rng)
        return local if self.order is None else self.order[local]

    def counts_matrix(self, local: NDArray[np.int64]) -> NDArray[np.float64]:
        """Row counts of many resamples at once: (B, n) from local draws of shape (B, k)."""
        b = local.shape[0]
        if self.scheme == "cluster":
            offsets = (np.arange(b) * self.n_clusters)[:, None]
            flat = np.bincount((local + offsets).ravel(), minlength=b * self.n_clusters)
            return flat.reshape(b, self.n_clusters).astype(np.float64)[:, self.codes]
        rows = local if self.order is None else self.order[local]
        flat = np.bincount((rows + (np.arange(b) * self.n)[:, None]).ravel(), minlength=b * self.n)
        return flat.reshape(b, self.n).astype(np.float64)

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


# Poisson(1) by inversion of its CDF on 53-bit integers: count k where T[k-1] <= u < T[k]
# (T[-1] = 0), u uniform on [0, 2^53). The thresholds are floor(CDF(k) * 2^53) in decimal
# arithmetic (correctly rounded: the same on every machine), so drawing uses no floating point.
def _poisson_thresholds() -> NDArray[np.uint64]:
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        term = cdf = decimal.Decimal(-1).exp()
        out = []
        k = 0
        while term * 2**53 >= 1:  # beyond, the remaining mass is below one 2^-53 step
            out.append(int(cdf * 2**53))
            k += 1
            term /= k
            cdf += term
    return np.array([*out, 2**53], dtype=np.uint64)


_POISSON_THRESHOLDS = _poisson_thresholds()
_BUCKET_SHIFT = np.uint64(53 - 16)  # a 16-bit bucket of u: its top bits


def _poisson_buckets() -> NDArray[np.float64]:
    """The count of every u in each of the 2^16 buckets of u's top bits, or -1 for the few
    buckets a threshold cuts (there the count is searched): a table lookup instead of a binary
    search per draw, with the same counts."""
    first = np.arange(1 << 16, dtype=np.uint64) << _BUCKET_SHIFT
    last = first + ((np.uint64(1) << _BUCKET_SHIFT) - np.uint64(1))
    low = np.searchsorted(_POISSON_THRESHOLDS, first, side="right")
    high = np.searchsorted(_POISSON_THRESHOLDS, last, side="right")
    return np.where(low == high, low, -1).astype(np.float64)


_POISSON_BUCKETS = _poisson_buckets()
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_HASH_KEY = "segeval-poisson1"  # 16 characters: the key of pandas' hash (not Python's salted one)


def _mix(z: NDArray[np.uint64], inplace: bool = False) -> NDArray[np.uint64]:
    """splitmix64's finalizer: a bijection of 64-bit words whose output bits look independent.
    ``inplace`` overwrites ``z`` (one temporary instead of six: the drawing's memory traffic)."""
    z = z if inplace else z.copy()
    t = np.empty_like(z)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2^64, as intended
        for shift, factor in ((30, _M1), (27, _M2)):
            np.right_shift(z, np.uint64(shift), out=t)
            z ^= t
            z *= factor
        np.right_shift(z, np.uint64(31), out=t)
        z ^= t
    return z


def unit_hashes(ids: ArrayLike) -> NDArray[np.uint64]:
    """A stable 64-bit hash of each unit id, from its text (``5`` and ``"5"`` hash alike).

    pandas' ``hash_array`` with a fixed key: the same on every machine, process and run (Python's
    own ``hash`` of a string is salted per process).
    """
    import pandas as pd

    text = pd.Series(np.asarray(ids)).astype(str).to_numpy(dtype=object)
    hashed = pd.util.hash_array(text, hash_key=_HASH_KEY, categorize=False)
    return np.asarray(hashed, dtype=np.uint64)


def poisson_seed(seed: SeedLike) -> int:
    """The 64-bit key of the Poisson counts, derived from the seed without mutating it."""
    return int(as_seed_sequence(seed).generate_state(1, dtype=np.uint64)[0])


def poisson_counts(hashes: NDArray[np.uint64], seed: int, block: range) -> NDArray[np.float64]:
    """Poisson(1) counts of units with id hashes ``hashes`` in resamples ``block``.

    The count of unit u in resample b is a pure function of (hash of u, b, seed): a counter-based
    generator (splitmix64 of the hash plus a per-resample key) turned into a 53-bit uniform and
    inverted through the Poisson(1) CDF. Rows can come in any order, split over any partitions
    or workers: each gets the same count. Returns float64 (the kernels' weight type) of shape
    (len(block), len(hashes)).
    """
    b = np.arange(block.start, block.stop, dtype=np.uint64)
    with np.errstate(over="ignore"):
        keys = _mix(_mix(np.uint64(seed) ^ ((b + np.uint64(1)) * _GOLDEN)))
        u = _mix(hashes[np.newaxis, :] + keys[:, np.newaxis], inplace=True)
    u >>= np.uint64(11)
    return _poisson_inverse(u)


def _poisson_inverse(u: NDArray[np.uint64]) -> NDArray[np.float64]:
    """The Poisson(1) count of each 53-bit ``u``: ``searchsorted(thresholds, u, "right")``."""
    counts = np.take(_POISSON_BUCKETS, (u >> _BUCKET_SHIFT).view(np.int64))  # < 2^16: exact
    cut = np.flatnonzero(counts < 0)  # about 1 draw in 10^4
    counts.flat[cut] = np.searchsorted(_POISSON_THRESHOLDS, u.flat[cut], side="right")
    return counts


@dataclass(frozen=True)
class Draws:
    """Point estimates and bootstrap draws of named statistics; read them by name."""

    estimates: dict[Hashable, NDArray[np.float64]]
    draws: dict[Hashable, NDArray[np.float64]]

    def estimate(self, name: Hashable) -> NDArray[np.float64]:
        """The statistic on the full data: shape (m,) for an m-valued statistic."""
        return self.estimates[name]

    def of(self, name: Hashable) -> NDArray[np.float64]:
        """The statistic on each resample: shape (n_boot, m)."""
        return self.draws[name]


# Below this many drawn rows (n * n_boot) the work stays in this process: forking workers costs
# about 20 ms, more than a small bootstrap takes.
PARALLEL_MIN_DRAWS = 10_000_000
# Parts of at most this many rows are evaluated for many resamples at once (a segment of a few
# dozen images costs ~50 us per resample one at a time, mostly call overhead).
BATCH_MAX_ROWS = 2000
BATCH_CELLS = 1 << 20  # rows x resamples evaluated in one matrix
CACHE_MAX_BYTES = 256 << 20


class DrawCache:
    """Local draws already made, by (resampling key, seed, n_boot), for one caller's parts.

    Two parts of the same size draw the same local resamples from the same seed (that is what
    makes a segment's interval equal the bootstrap of that segment alone), so an evaluation of
    many segments draws each size once. Owned by the caller, never module-level.
    """

    def __init__(self) -> None:
        self.draws: dict[Hashable, NDArray[np.int32]] = {}
        self.bytes = 0

    def get(
        self, key: Hashable, make: Callable[[], NDArray[np.int64]]
    ) -> NDArray[np.int32] | NDArray[np.int64]:
        if key in self.draws:
            return self.draws[key]
        value = make()
        if self.bytes + value.size * 4 <= CACHE_MAX_BYTES:
            self.draws[key] = value.astype(np.int32)
            self.bytes += value.size * 4
        return value


_Job = tuple[tuple[Statistic, ...], Resampler, list[np.random.SeedSequence]]


def _evaluate(statistics: tuple[Statistic, ...], counts: Weights, total: float) -> NDArray[Any]:
    return np.hstack([stat(counts, total) for stat in statistics]).astype(np.float64)


def _run_block(job: _Job, block: range) -> NDArray[np.float64]:
    statistics, resampler, seeds = job
    rows = []
    for b in block:
        draws = resampler.draw(np.random.default_rng(seeds[b]))
        rows.append(_evaluate(statistics, resampler.counts(draws), resampler.total(draws)))
    return np.array(rows)


class _Worker:
    """The job of one forked worker process, given once by the pool's initializer.

    Workers are processes, not threads: the many short numpy calls of a resample hold the GIL
    often enough that two threads ran only 1.2x faster than one, where two processes run 1.9x.
    The job lives in the worker's copy of this class, never in the parent's.
    """

    job: _Job | None = None

    @staticmethod
    def start(job: _Job) -> None:
        _Worker.job = job

    @staticmethod
    def run(block: range) -> NDArray[np.float64]:
        assert _Worker.job is not None, "a worker runs only after its initializer"
        return _run_block(_Worker.job, block)


def _can_fork() -> bool:
    return "fork" in mp.get_all_start_methods() and not mp.current_process().daemon


def bootstrap_distribution(
    statistics: Mapping[Hashable, Statistic],
    resampler: Resampler,
    *,
    n_boot: int,
    seed: SeedLike,
    n_jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    cache: DrawCache | None = None,
) -> Draws:
    """Evaluate named statistics on the full data and on ``n_boot`` resamples.

    A statistic is a function of the row count vector and its sum (see :mod:`segeval._kernels`)
    returning a float or a fixed-length array; NaN marks a resample on which it is undefined.
    Large jobs are split over ``n_jobs`` forked processes; the output does not depend on
    ``n_jobs``. ``progress(k)`` is called as resamples complete.
    """
    n_boot = check_positive_int(n_boot, "n_boot")
    names = list(statistics)
    stats = tuple(statistics[name] for name in names)
    full = [np.atleast_1d(stat(np.ones(resampler.n), float(resampler.n))) for stat in stats]
    sizes = [v.size for v in full]
    estimates = np.hstack(full).astype(np.float64)
    seq = as_seed_sequence(seed)
    if resampler.scheme == "poisson":
        out = _run_poisson(stats, resampler, poisson_seed(seq), n_boot, estimates.size, progress)
    elif resampler.n <= BATCH_MAX_ROWS and all(hasattr(stat, "batch") for stat in stats):
        key = (
            *resampler.key,
            repr(np.asarray(seq.entropy, dtype=object).tolist()),
            seq.spawn_key,
            seq.pool_size,
            n_boot,
        )  # entropy: an int, a list or an array

        def make() -> NDArray[np.int64]:
            rngs = (np.random.default_rng(s) for s in child_seeds(seq, n_boot))
            return np.stack([resampler.local_draw(rng) for rng in rngs])

        local = make() if cache is None else cache.get(key, make)
        out = _run_batched(stats, resampler, local, estimates.size, progress)
    else:
        job: _Job = (stats, resampler, child_seeds(seq, n_boot))
        out = _run_all(job, n_boot, estimates.size, resampler.n, n_jobs, progress)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    return Draws(
        estimates={n: estimates[a:b] for n, a, b in zip(names, starts, ends, strict=True)},
        draws={n: out[:, a:b] for n, a, b in zip(names, starts, ends, strict=True)},
    )


def _run_batched(
    stats: tuple[Statistic, ...],
    resampler: Resampler,
    local: NDArray[np.int32] | NDArray[np.int64],
    width: int,
    progress: Callable[[int], None] | None,
) -> NDArray[np.float64]:
    n_boot = local.shape[0]
    out = np.empty((n_boot, width))
    step = max(1, BATCH_CELLS // max(resampler.n, 1))
    for start in range(0, n_boot, step):
        counts = resampler.counts_matrix(local[start : start + step].astype(np.int64))
        totals = counts.sum(axis=1)
        columns = [np.asarray(stat.batch(counts, totals)) for stat in stats]  # type: ignore[attr-defined]
        out[start : start + step] = np.column_stack(columns)
        if progress is not None:
            progress(counts.shape[0])
    return out


def _run_poisson(
    stats: tuple[Statistic, ...],
    resampler: Resampler,
    seed: int,
    n_boot: int,
    width: int,
    progress: Callable[[int], None] | None,
) -> NDArray[np.float64]:
    """Every resample's statistics from its Poisson counts, a block of resamples at a time."""
    out = np.empty((n_boot, width))
    batched = resampler.n <= BATCH_MAX_ROWS and all(hasattr(stat, "batch") for stat in stats)
    step = max(1, BATCH_CELLS // max(resampler.n, 1))
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, n_boot, step):
            block = range(start, min(start + step, n_boot))
            counts = resampler.poisson_block(seed, block)
            totals = counts.sum(axis=1)
            if batched:
                columns = [np.asarray(stat.batch(counts, totals)) for stat in stats]  # type: ignore[attr-defined]
                out[start : block.stop] = np.column_stack(columns)
            else:
                for i, b in enumerate(block):
                    out[b] = _evaluate(stats, counts[i], float(totals[i]))
            if progress is not None:
                progress(len(block))
    return out


def _run_all(
    job: _Job,
    n_boot: int,
    width: int,
    n_rows: int,
    n_jobs: int | None,
    progress: Callable[[int], None] | None,
) -> NDArray[np.float64]:
    workers = min(check_positive_int(n_jobs or os.cpu_count() or 1, "n_jobs"), n_boot)
    parallel = workers > 1 and n_rows * n_boot >= PARALLEL_MIN_DRAWS and _can_fork()
    # Blocks small enough for a live progress bar, large enough to amortize the round trips.
    size = max(1, -(-n_boot // (workers * 8)))
    blocks = [range(start, min(start + size, n_boot)) for start in range(0, n_boot, size)]
    out = np.empty((n_boot, width))
    # Workers inherit the single-threaded BLAS set here: the kernels' dot products are too short
    # to gain from BLAS threads, which would oversubscribe the cores.
    with threadpool_limits(limits=1, user_api="blas"):
        if parallel:
            context = mp.get_context("fork")
            with ProcessPoolExecutor(
                workers, context, initializer=_Worker.start, initargs=(job,)
            ) as pool:
                results = zip(blocks, pool.map(_Worker.run, blocks), strict=True)
                for block, rows in results:
                    out[block.start : block.stop] = rows
                    if progress is not None:
                        progress(len(block))
        else:
            for block in blocks:
                out[block.start : block.stop] = _run_block(job, block)
                if progress is not None:
                    progress(len(block))
    return out


@dataclass(frozen=True, repr=False)
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

    def __repr__(self) -> str:
        return readable_repr(self)


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


def undefined_result(ci: float) -> BootstrapResult:
    """The result of a statistic undefined on the full data (the caller has warned why)."""
    nan = float("nan")
    return BootstrapResult(nan, nan, nan, nan, 0, 0, ci)
