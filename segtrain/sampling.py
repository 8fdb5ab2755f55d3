"""Periodic sampling (paper §2.2, Algorithms 1 and 2), in numpy.

Algorithm 1 builds a *pattern*: L = Σ n_i slots, DS i in n_i of them, nearly equally spaced.
Algorithm 2 reads the pattern cyclically; each DS alternates its labels, and each (DS, label) pool
is a seeded permutation read in order and reshuffled when exhausted.

Here the stream of sample indices is a pure function of its position t: the DS at t is
``pattern[t mod L]``, its occurrence number k follows from the pattern, the label is
``first_label[DS] XOR (k mod 2)``, and the sample is entry ``k // 2`` of the pool's endless
sequence of permutations (permutation e of a pool is seeded by (seed, DS, label, e)). Resuming is
therefore just remembering t, and several processes can read disjoint parts of one stream.
The torch wrapper is :mod:`segtrain.sampler`.

Strategies are registered in ``STRATEGIES`` (name -> :class:`StrategySpec`): a strategy is its
quota kernel (slots of each DS in the pattern, from its label counts), or a pooled one (one DS
holding everything). Adding one is a kernel, a registry entry and its tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from segeval import Segments
from segeval.segments import as_segments
from segeval.validation import InputError, check_labels

Strategy = Literal[
    "periodic", "balanced-segments", "balanced-labels", "single-segment", "square-root"
]
Counts = NDArray[np.int64]


@dataclass(frozen=True)
class StrategySpec:
    """A sampling strategy: how many slots of the pattern each usable DS gets.

    ``quota(rarer)`` maps each usable DS's count of its rarer label (n_i > 0) to its slots (>= 1);
    a ``pooled`` strategy has no pattern: one DS holding every sample, labels alternating.
    ``needs_segment``: the strategy draws one DS, named by ``segment=``.
    """

    name: str
    summary: str
    quota: Callable[[Counts], Counts] | None = None
    pooled: bool = False
    needs_segment: bool = False


def _square_root(rarer: Counts) -> Counts:
    # Integer slots proportional to sqrt(n_i): the largest DS keeps its n_i slots and the others
    # get sqrt(n_i * n_max) >= sqrt(n_max), so rounding to slots barely moves the shares.
    scaled = np.sqrt(rarer.astype(np.float64) * float(rarer.max()))
    return np.maximum(1, np.rint(scaled)).astype(np.int64)


STRATEGIES: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        StrategySpec(
            "periodic",
            "each DS in proportion to its rarer label n_i, labels alternating (the paper)",
            quota=lambda rarer: rarer,
        ),
        StrategySpec(
            "balanced-segments",
            "every DS equally often, labels alternating",
            quota=np.ones_like,
        ),
        StrategySpec(
            "balanced-labels",
            "all samples pooled, labels alternating (segments ignored)",
            pooled=True,
        ),
        StrategySpec(
            "single-segment",
            "one DS (segment=), labels alternating",
            quota=lambda rarer: rarer,
            needs_segment=True,
        ),
        StrategySpec(
            "square-root",
            "each DS in proportion to the square root of n_i: between periodic and "
            "balanced-segments",
            quota=_square_root,
        ),
    )
}
assert set(STRATEGIES) == set(get_args(Strategy)), "the registry and the Strategy type differ"


def strategy_spec(strategy: str) -> StrategySpec:
    """The registered strategy of that name; InputError naming the known ones otherwise."""
    spec = STRATEGIES.get(strategy)
    if spec is None:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}.")
    return spec


def check_sampling_input(
    labels: ArrayLike, segments: Segments | ArrayLike
) -> tuple[NDArray[np.int8], Segments]:
    """Labels (0/1) and their segments, checked once at the boundary."""
    y = check_labels(labels, "labels")
    return y, as_segments(segments, y.size, "labels")


class _FreeSlots:
    """The free slots of the pattern: rank and select queries, batch removals.

    Free slots are a sorted array ``free`` minus a sorted array ``taken`` of slots removed since the
    last compaction (``taken`` is a subset of ``free``). Compacting only when ``taken`` has grown
    to a fraction of ``free`` keeps the total cost O(L log L) instead of O(L) per DS.
    """

    def __init__(self, size: int, dtype: type[np.signedinteger] = np.int64) -> None:
        self.free = np.arange(size, dtype=dtype)
        self.taken = np.empty(0, dtype=dtype)
        self.taken_pos = np.empty(0, dtype=dtype)  # positions of `taken` in `free`

    def __len__(self) -> int:
        return self.free.size - self.taken.size

    def rank(self, x: np.ndarray) -> np.ndarray:
        """Number of free slots < x, i.e. the rank of the first free slot >= x."""
        return np.searchsorted(self.free, x) - np.searchsorted(self.taken, x)

    def take(self, ranks: np.ndarray) -> np.ndarray:
        """Remove and return the free slots of the given ranks (sorted, distinct)."""
        # The k-th removed slot has (taken_pos[k] - k) free slots before it.
        before = self.taken_pos - np.arange(self.taken_pos.size, dtype=self.taken_pos.dtype)
        pos = ranks + np.searchsorted(before, ranks, side="right")
        slots = self.free[pos]
        at = np.searchsorted(self.taken, slots)
        self.taken = np.insert(self.taken, at, slots)
        self.taken_pos = np.insert(self.taken_pos, at, pos)
        if self.taken.size > max(4096, self.free.size // 16):
            self.free = np.delete(self.free, self.taken_pos)
            self.taken = self.taken[:0]
            self.taken_pos = self.taken_pos[:0]
        return np.asarray(slots)


def build_pattern(n_min: ArrayLike) -> NDArray[np.int32]:
    """Algorithm 1: the sampling pattern for DSs with ``n_min[i]`` samples of their rarer label.

    DSs are placed in ascending ``n_min`` (ties: lower id first); DS i wants slots
    ``floor(j * L / n_i)`` for j = 0..n_i-1, and a slot already taken moves to the next free
    slot, wrapping around. A DS with ``n_min = 0`` gets no slot.

    Runs in O(L log L) with vectorized numpy per DS: the first free slot at or after each wanted
    slot is found by rank arithmetic over the free slots, not by scanning.

    Examples
    --------
    >>> build_pattern([1, 2, 1]).tolist()
    [0, 2, 1, 1]
    """
    n = np.asarray(n_min)
    if n.ndim != 1 or n.size == 0 or n.dtype.kind not in "iu" or (n < 0).any():
        raise InputError(f"n_min must be a non-empty list of non-negative integers; got {n_min!r}.")
    n = n.astype(np.int64)
    total = int(n.sum())
    if total == 0:
        raise InputError("n_min sums to 0: no DS has samples of both labels.")
    pattern = np.full(total, -1, dtype=np.int32)
    # int32 slots halve the memory traffic of the searches; every array shares the dtype so that
    # numpy never converts the large one.
    dtype = np.int32 if total < 2**31 else np.int64
    free = _FreeSlots(total, dtype)
    for ds in np.argsort(n, kind="stable"):
        k = int(n[ds])
        if k == 0:
            continue
        j = np.arange(k, dtype=np.int64)
        wanted = (j * total // k).astype(dtype)
        # Each slot goes to the first free rank >= the wanted one and after the previous slot of
        # this DS: a running maximum of (rank - j), shifted back by j.
        ranks = (np.maximum.accumulate(free.rank(wanted) - j) + j).astype(dtype)
        size = len(free)
        past_end = np.greater_equal(ranks, size)
        if past_end.any():
            # Wrapping around: the overflow takes the lowest ranks this DS has not used.
            kept = ranks[~past_end]
            low = np.arange(min(size, kept.size + int(past_end.sum())), dtype=dtype)
            ranks = np.sort(np.concatenate([np.setdiff1d(low, kept)[: past_end.sum()], kept]))
        pattern[free.take(ranks)] = ds
    return pattern


@dataclass(frozen=True)
class Plan:
    """What a strategy draws: per DS its counts, n_min, share of the pattern, and pattern."""

    strategy: str
    names: tuple[str, ...]
    n_pos: NDArray[np.int64]
    n_neg: NDArray[np.int64]
    quota: NDArray[np.int64]  # slots of each DS in the pattern (0 = not drawn)
    proportion: NDArray[np.float64]  # p_i: the expected share of draws from DS i
    left_out: tuple[str, ...]
    pooled: bool = False  # one DS holding every sample: no pattern over the DSs


def make_plan(
    labels: ArrayLike,
    segments: Segments | ArrayLike,
    strategy: Strategy = "periodic",
    *,
    segment: str | None = None,
) -> Plan:
    """Per-DS quotas of a strategy (see ``STRATEGIES``).

    - ``periodic``: n_i = count of the rarer label of DS i (the paper);
    - ``balanced-segments``: every usable DS gets the same quota;
    - ``balanced-labels``: one DS holding every sample (reported per DS by its share of draws);
    - ``single-segment``: only ``segment``;
    - ``square-root``: quotas proportional to sqrt(n_i).

    A DS with one label only cannot alternate labels: it is left out with a warning naming it
    (not for ``balanced-labels``, which pools everything). Every DS left out is an error.
    """
    y, seg = check_sampling_input(labels, segments)
    return plan_checked(y, seg, strategy, segment=segment)


def plan_checked(
    y: NDArray[np.int8], seg: Segments, strategy: str, *, segment: str | None = None
) -> Plan:
    """:func:`make_plan` on labels and segments already checked (:func:`check_sampling_input`)."""
    spec = strategy_spec(strategy)
    counts = np.bincount(seg.codes * 2 + y, minlength=2 * len(seg)).reshape(-1, 2)
    n_neg, n_pos = counts[:, 0].astype(np.int64), counts[:, 1].astype(np.int64)
    rarer = np.minimum(n_pos, n_neg)
    if spec.needs_segment:
        if segment not in seg.names:
            raise InputError(
                f"strategy {strategy!r} needs segment= one of {', '.join(seg.names)}; "
                f"got {segment!r}."
            )
        keep = np.array([name == segment for name in seg.names])
    elif segment is not None:
        needing = " or ".join(repr(s.name) for s in STRATEGIES.values() if s.needs_segment)
        raise InputError(f"segment= is only used with strategy {needing}; got {strategy!r}.")
    else:
        keep = np.ones(len(seg), dtype=bool)
    if spec.pooled:
        if int(n_pos.sum()) == 0 or int(n_neg.sum()) == 0:
            raise InputError("The labels hold one class only; no strategy can alternate labels.")
        # Half the draws are positives drawn from all positives, half negatives from all negatives.
        share = 0.5 * (n_pos / n_pos.sum() + n_neg / n_neg.sum())
        return Plan(strategy, seg.names, n_pos, n_neg, np.zeros_like(n_pos), share, (), True)
    assert spec.quota is not None
    one_label = keep & (rarer == 0)
    left_out = tuple(name for name, bad in zip(seg.names, one_label, strict=True) if bad)
    if left_out:
        warnings.warn(
            f"Segment(s) with one label only are left out of the sampling: {', '.join(left_out)}.",
            UserWarning,
            stacklevel=3,
        )
    usable = keep & (rarer > 0)
    if not usable.any():
        raise InputError("Every segment is left out: none has samples of both labels.")
    quota = np.zeros_like(rarer)
    quota[usable] = spec.quota(rarer[usable])
    return Plan(strategy, seg.names, n_pos, n_neg, quota, quota / quota.sum(), left_out)


class IndexStream:
    """The endless stream of sample indices of a strategy: ``indices(start, stop)``.

    Parameters
    ----------
    labels : array-like of shape (n,)
        0/1 label of each sample.
    segments : Segments or one segment label per sample
        DS membership (see :func:`segeval.segment_keys`).
    strategy : a name of ``STRATEGIES``
    seed : int
        The stream is a pure function of (labels, segments, strategy, segment, seed).
    segment : str, optional
        The DS of ``single-segment``.
    """

    def __init__(
        self,
        labels: ArrayLike,
        segments: Segments | ArrayLike,
        strategy: Strategy = "periodic",
        *,
        seed: int = 0,
        segment: str | None = None,
    ) -> None:
        y, seg = check_sampling_input(labels, segments)
        self._build(y, seg, plan_checked(y, seg, strategy, segment=segment), seed)

    @classmethod
    def from_plan(
        cls, y: NDArray[np.int8], segments: Segments, plan: Plan, *, seed: int = 0
    ) -> IndexStream:
        """The stream of ``plan`` for labels and segments already checked (no check again)."""
        stream = cls.__new__(cls)
        stream._build(y, segments, plan, seed)
        return stream

    def _build(self, y: NDArray[np.int8], segments: Segments, plan: Plan, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed must be a non-negative integer; got {seed!r}.")
        self.seed = int(seed)
        self.plan = plan
        if plan.pooled:
            codes = np.zeros(y.size, dtype=np.int64)  # one DS holding everything
            pattern = np.zeros(1, dtype=np.int32)
        else:
            codes = segments.codes
            pattern = build_pattern(plan.quota)
        self.pattern = pattern
        self.n_ds = int(codes.max()) + 1
        # occurrence[s]: how many earlier slots of the pattern hold the same DS.
        per_ds = np.bincount(pattern, minlength=self.n_ds)
        order = np.argsort(pattern, kind="stable")
        occurrence = np.empty(pattern.size, dtype=np.int64)
        occurrence[order] = np.arange(pattern.size) - np.repeat(np.cumsum(per_ds) - per_ds, per_ds)
        self.occurrence = occurrence
        self.per_cycle = per_ds.astype(np.int64)
        # Pools: the samples of each (DS, label), in index order; permuted per epoch.
        key = codes * 2 + y
        pool_order = np.argsort(key, kind="stable")
        sizes = np.bincount(key, minlength=2 * self.n_ds)
        self.pools = np.split(pool_order, np.cumsum(sizes)[:-1])
        self.pool_sizes = sizes.astype(np.int64)
        root = np.random.SeedSequence(self.seed)
        self.first_label = np.random.default_rng(root.spawn(1)[0]).integers(0, 2, self.n_ds)
        self._cache: dict[tuple[int, int], NDArray[np.int64]] = {}

    def _permutation(self, pool: int, epoch: int) -> NDArray[np.int64]:
        cached = self._cache.get((pool, epoch))
        if cached is None:
            ss = np.random.SeedSequence(self.seed, spawn_key=(1, pool, epoch))
            cached = self.pools[pool][np.random.default_rng(ss).permutation(self.pools[pool].size)]
            # Keep the current epoch of each pool only: memory stays O(n).
            self._cache = {k: v for k, v in self._cache.items() if k[0] != pool}
            self._cache[(pool, epoch)] = cached
        return cached

    def indices(self, start: int, stop: int) -> NDArray[np.int64]:
        """Sample indices at stream positions [start, stop)."""
        if not 0 <= start <= stop:
            raise InputError(f"Need 0 <= start <= stop; got start={start}, stop={stop}.")
        return self.indices_at(np.arange(start, stop, dtype=np.int64))

    def indices_at(self, t: NDArray[np.int64]) -> NDArray[np.int64]:
        """Sample indices at the given stream positions (any shape, non-negative)."""
        cycle, slot = np.divmod(t, self.pattern.size)
        ds = self.pattern[slot].astype(np.int64)
        k = cycle * self.per_cycle[ds] + self.occurrence[slot]
        pool = ds * 2 + (self.first_label[ds] ^ (k & 1))
        draw = k >> 1  # labels alternate, so each label gets every other occurrence
        epoch, pos = np.divmod(draw, self.pool_sizes[pool])
        out = np.empty(t.shape, dtype=np.int64)
        # Group positions by (pool, epoch): a chunk of the stream touches few epochs of a pool.
        group = (pool * (int(epoch.max()) + 1) + epoch).ravel() if t.size else pool.ravel()
        order = np.argsort(group, kind="stable")
        bounds = np.flatnonzero(np.diff(group[order])) + 1
        flat_out, flat_pos, flat_pool, flat_epoch = (
            out.reshape(-1),
            pos.ravel(),
            pool.ravel(),
            epoch.ravel(),
        )
        for part in np.split(order, bounds) if order.size else []:
            p, e = int(flat_pool[part[0]]), int(flat_epoch[part[0]])
            flat_out[part] = self._permutation(p, e)[flat_pos[part]]
        return out


def expected_draws(plan: Plan, n_batches: int, batch_size: int) -> NDArray[np.float64]:
    """Expected number of samples drawn from each DS over ``n_batches`` batches."""
    return plan.proportion * n_batches * batch_size


def plan_table(
    plans: Sequence[Plan], *, n_batches: int = 1000, batch_size: int = 24
) -> list[dict[str, object]]:
    """Rows for ``segtrain plan``: per (strategy, DS) counts, n_min, p_i, period and draws."""
    rows = []
    for plan in plans:
        p = plan.proportion
        draws = expected_draws(plan, n_batches, batch_size)
        for i, name in enumerate(plan.names):
            rows.append(
                {
                    "strategy": plan.strategy,
                    "segment": name,
                    "n_pos": int(plan.n_pos[i]),
                    "n_neg": int(plan.n_neg[i]),
                    "n_min": int(min(plan.n_pos[i], plan.n_neg[i])),
                    "proportion": float(p[i]),
                    "period": float(1 / p[i]) if p[i] > 0 else float("inf"),
                    f"draws_per_{n_batches}_batches": float(draws[i]),
                    "left_out": name in plan.left_out,
                }
            )
    return rows
