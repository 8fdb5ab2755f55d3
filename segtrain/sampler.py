"""``PeriodicBatchSampler``: the periodic-sampling stream as a torch batch sampler.

Use it as ``DataLoader(dataset, batch_sampler=PeriodicBatchSampler(...), num_workers=...)``. It is
infinite (training counts steps, not epochs). The index stream is computed in numpy by
:class:`segtrain.sampling.IndexStream`; this class only cuts it into batches for one rank.

A DataLoader with workers draws batches ahead of the training loop (``prefetch_factor`` per
worker), so the sampler's own count runs ahead of what was trained on. Iterate the loader
through :meth:`BatchStream.track`: the state then records the batches the loop has *consumed*,
and a resumed run continues with exactly the next one. (torchdata's ``StatefulDataLoader``
snapshots the sampler's state batch by batch itself: no ``track`` there.)

:class:`BatchStream` is the protocol of segtrain's batch samplers, this one and pretrain's
:class:`segtrain.patches.BalancedBatchSampler`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from torch.utils.data import BatchSampler, Sampler

from segeval import Segments
from segeval.validation import InputError
from segtrain.sampling import IndexStream, Strategy, check_sampling_input, plan_checked

STATE_VERSION = 1
T = TypeVar("T")


class BatchStream:
    """An endless stream of batches whose state is the next batch the training loop consumes.

    Batch k is a pure function of k, so the state is one number (plus a fingerprint naming the
    stream). A subclass sets ``fingerprint``, ``next_batch = 0``, ``_tracked = False`` and
    ``_chunk`` (batches computed at a time), and implements :meth:`batches`; iterating,
    :meth:`track`, :meth:`state_dict` and :meth:`load_state_dict` are shared.
    """

    fingerprint: str
    next_batch: int  # the next batch the training loop will consume (the state)
    _tracked: bool
    _chunk: int

    def batches(self, first: int, count: int) -> Sequence[Any] | np.ndarray:
        """Batches ``first .. first + count - 1`` of this rank."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[Any]]:
        cursor = self.next_batch
        while True:
            block = self.batches(cursor, self._chunk)
            for batch in block.tolist() if isinstance(block, np.ndarray) else block:
                cursor += 1
                if not self._tracked:  # iterated directly: what is yielded is consumed
                    self.next_batch = cursor
                yield list(batch)

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} is endless: count steps, not batches.")

    def track(self, loader: Iterable[T]) -> Iterator[T]:
        """Iterate ``loader`` (built on this sampler), counting the batches the loop consumes.

        Examples
        --------
        >>> for images, labels in sampler.track(loader):  # doctest: +SKIP
        ...     train_step(images, labels)
        ...     state = sampler.state_dict()  # resumes after the batch just trained on
        """
        self._tracked = True
        for batch in loader:
            self.next_batch += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Where the sampler stands: the next batch to consume, and what stream it belongs to."""
        return {
            "version": STATE_VERSION,
            "next_batch": self.next_batch,
            "fingerprint": self.fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where a sampler of the same stream stopped."""
        if state.get("version") != STATE_VERSION:
            raise InputError(
                f"Sampler state version {state.get('version')!r} is not {STATE_VERSION}."
            )
        if state.get("fingerprint") != self.fingerprint:
            raise InputError(
                "Sampler state belongs to another stream (different labels, segments, strategy, "
                "seed, batch size or world size)."
            )
        next_batch = state.get("next_batch")
        if not isinstance(next_batch, int) or next_batch < 0:
            raise InputError(
                f"Sampler state next_batch must be an integer >= 0; got {next_batch!r}."
            )
        self.next_batch = next_batch


def check_ranks(batch_size: int, rank: int, world_size: int) -> None:
    """InputError unless batch_size >= 1, world_size >= 1 and 0 <= rank < world_size."""
    for name, value, low in (("batch_size", batch_size, 1), ("world_size", world_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an integer >= {low}; got {value!r}.")
    if (
        isinstance(rank, bool)
        or not isinstance(rank, (int, np.integer))
        or not 0 <= rank < world_size
    ):
        raise InputError(
            f"rank must be an integer in [0, world_size) = [0, {world_size}); got {rank!r}."
        )


def stream_fingerprint(*parts: bytes) -> str:
    """A short hash naming a stream: what a sampler state must belong to."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:16]


def rank_positions(first: int, count: int, batch_size: int, rank: int, world: int) -> np.ndarray:
    """Stream positions of this rank's batches ``first ..``, shape (count, batch_size).

    With W processes, global batch k is the W * batch_size consecutive positions from
    k * W * batch_size, and rank r takes the r-th contiguous block of it. (Striding rank::W
    would hand some ranks single-label batches, since labels alternate along the stream.)
    """
    k = np.arange(first, first + count, dtype=np.int64)[:, None]
    return k * (world * batch_size) + rank * batch_size + np.arange(batch_size)[None, :]


class PeriodicBatchSampler(BatchStream, BatchSampler):
    """Endless batches of sample indices drawn by a sampling strategy.

    Parameters
    ----------
    labels : array-like of shape (n,)
        0/1 label of each sample of the dataset.
    segments : Segments or one segment label per sample
        DS membership.
    batch_size : int
        Samples per batch *on this rank*.
    strategy : str
        A name of :data:`segtrain.sampling.STRATEGIES`: ``periodic`` (the paper),
        ``balanced-segments``, ``balanced-labels``, ``single-segment`` or ``square-root``.
    seed : int
        The stream is a pure function of (labels, segments, strategy, segment, seed).
    rank, world_size : int
        With W processes, global batch k is the W * batch_size consecutive stream positions from
        k * W * batch_size, and rank r takes the r-th contiguous block of it.
    segment : str, optional
        The DS of ``single-segment``.

    It is a :class:`torch.utils.data.BatchSampler`, so frameworks that inspect batch samplers
    (Lightning) accept it; it has no length, being endless.
    """

    def __init__(
        self,
        labels: ArrayLike,
        segments: Segments | ArrayLike,
        *,
        batch_size: int,
        strategy: Strategy = "periodic",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        segment: str | None = None,
    ) -> None:
        check_ranks(batch_size, rank, world_size)
        y, segments = check_sampling_input(labels, segments)  # checked once, here
        plan = plan_checked(y, segments, strategy, segment=segment)
        self.stream = IndexStream.from_plan(y, segments, plan, seed=seed)
        self.batch_size = int(batch_size)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = False  # BatchSampler's attributes; batches are always full
        self.sampler = _Indices(self)
        self.next_batch = 0
        self._tracked = False
        # Compute ~64k indices at a time: numpy's per-call cost is then negligible per index.
        self._chunk = max(1, 65536 // self.batch_size)
        self.fingerprint = stream_fingerprint(
            y.tobytes(),
            segments.codes.astype(np.int64).tobytes(),
            repr((strategy, segment, int(seed), self.batch_size, self.world_size)).encode(),
        )

    def batches(self, first: int, count: int) -> np.ndarray:
        """Batches ``first .. first + count - 1`` of this rank, shape (count, batch_size)."""
        t = rank_positions(first, count, self.batch_size, self.rank, self.world_size)
        return self.stream.indices_at(t)


class _Indices(Sampler[int]):
    """The sample indices of a :class:`PeriodicBatchSampler`, one at a time (``.sampler``)."""

    def __init__(self, batches: PeriodicBatchSampler) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[int]:
        cursor = self.batches.next_batch
        while True:
            yield from self.batches.batches(cursor, 1)[0].tolist()
            cursor += 1
