"""PeriodicBatchSampler: resume, DDP sharding, DataLoader use, bad input."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from segtrain.sampler import PeriodicBatchSampler
from tests.test_sampling import make_data


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


@pytest.mark.parametrize(
    "strategy", ["periodic", "balanced-segments", "balanced-labels", "square-root"]
)
def test_resume_continues_exactly(strategy):
    y, seg = make_data()
    kw = dict(batch_size=24, strategy=strategy, seed=7)
    straight = take(PeriodicBatchSampler(y, seg, **kw), 1000)
    first = PeriodicBatchSampler(y, seg, **kw)
    head = take(first, 400)
    state = first.state_dict()
    assert state["next_batch"] == 400
    second = PeriodicBatchSampler(y, seg, **kw)
    second.load_state_dict(state)
    assert head + take(second, 600) == straight


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_split_each_global_batch_into_contiguous_blocks(world_size):
    y, seg = make_data()
    b = 8
    single = take(PeriodicBatchSampler(y, seg, batch_size=world_size * b, seed=1), 50)
    ranks = [
        take(PeriodicBatchSampler(y, seg, batch_size=b, seed=1, rank=r, world_size=world_size), 50)
        for r in range(world_size)
    ]
    for k in range(50):
        assert (
            list(itertools.chain.from_iterable(ranks[r][k] for r in range(world_size))) == single[k]
        )


def test_every_rank_batch_holds_both_labels():
    # Labels alternate along the stream, so a contiguous block of >= 2 positions of one DS pool
    # under balanced-labels always has both; a rank::W stride would not.
    y, seg = make_data()
    for r in range(2):
        s = PeriodicBatchSampler(
            y, seg, batch_size=6, strategy="balanced-labels", seed=0, rank=r, world_size=2
        )
        for batch in take(s, 100):
            assert set(y[batch].tolist()) == {0, 1}


class Indexed(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor(i)


def test_works_as_a_dataloader_batch_sampler_with_workers():
    y, seg = make_data()
    sampler = PeriodicBatchSampler(y, seg, batch_size=16, seed=2)
    loader = DataLoader(Indexed(y.size), batch_sampler=sampler, num_workers=2)
    got = [batch.tolist() for batch in itertools.islice(loader, 20)]
    expected = take(PeriodicBatchSampler(y, seg, batch_size=16, seed=2), 20)
    assert got == expected


def test_resume_under_a_loader_with_workers_counts_consumed_batches():
    # Two workers prefetch 2 batches each: the sampler has yielded ~14 batches when the loop
    # has used 10. The state must say 10, and a resumed loader must continue with batch 10.
    y, seg = make_data()
    kw = dict(batch_size=16, seed=3)
    straight = take(PeriodicBatchSampler(y, seg, **kw), 25)
    first = PeriodicBatchSampler(y, seg, **kw)
    loader = DataLoader(Indexed(y.size), batch_sampler=first, num_workers=2)
    head = [batch.tolist() for batch in itertools.islice(first.track(loader), 10)]
    state = first.state_dict()
    assert state["next_batch"] == 10
    second = PeriodicBatchSampler(y, seg, **kw)
    second.load_state_dict(state)
    loader = DataLoader(Indexed(y.size), batch_sampler=second, num_workers=2)
    tail = [batch.tolist() for batch in itertools.islice(second.track(loader), 15)]
    assert head + tail == straight
    assert second.state_dict()["next_batch"] == 25


def test_is_a_batch_sampler_without_length():
    from torch.utils.data import BatchSampler

    y, seg = make_data()
    sampler = PeriodicBatchSampler(y, seg, batch_size=4, seed=0)
    assert isinstance(sampler, BatchSampler) and sampler.batch_size == 4 and not sampler.drop_last
    with pytest.raises(TypeError, match="endless"):
        len(sampler)
    flat = list(itertools.islice(iter(sampler.sampler), 8))
    assert flat == [
        i for batch in take(PeriodicBatchSampler(y, seg, batch_size=4), 2) for i in batch
    ]


def test_state_of_another_stream_is_refused():
    y, seg = make_data()
    state = PeriodicBatchSampler(y, seg, batch_size=4, seed=1).state_dict()
    other = PeriodicBatchSampler(y, seg, batch_size=4, seed=2)
    with pytest.raises(ValueError, match="belongs to another stream"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        other.load_state_dict({"next_batch": 3})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1; got 0"),
        ({"world_size": 0}, "world_size must be an integer >= 1; got 0"),
        (
            {"rank": 2, "world_size": 2},
            r"rank must be an integer in \[0, world_size\) = \[0, 2\); got 2",
        ),
        ({"rank": -1}, "rank must be an integer in"),
    ],
)
def test_bad_arguments(kwargs, match):
    y, seg = make_data()
    args = {"batch_size": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        PeriodicBatchSampler(y, seg, **args)


def test_indices_are_numpy_free_python_ints():
    y, seg = make_data()
    batch = take(PeriodicBatchSampler(y, seg, batch_size=5), 1)[0]
    assert all(type(i) is int for i in batch)
    assert np.asarray(batch).max() < y.size


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")
def test_torchdata_stateful_dataloader_resumes_exactly_with_its_own_state_dict():
    # The ecosystem's protocol (torchdata; Lightning and accelerate checkpoint it): the loader's
    # state_dict holds the sampler's, snapshotted batch by batch as the loop consumes them, so
    # workers prefetching ahead do not move it. No `track` needed.
    from torchdata.stateful_dataloader import StatefulDataLoader

    y, seg = make_data()
    kw = dict(batch_size=16, seed=3)
    straight = take(PeriodicBatchSampler(y, seg, **kw), 25)

    def loader(**changes):
        sampler = PeriodicBatchSampler(y, seg, **(kw | changes))
        return StatefulDataLoader(Indexed(y.size), batch_sampler=sampler, num_workers=2)

    first = loader()
    batches = iter(first)
    head = [next(batches).tolist() for _ in range(10)]
    state = first.state_dict()
    del batches
    # The sampler's own state_dict, as of the 10 batches consumed (workers had drawn more).
    saved = state["_snapshot"]["_main_snapshot"]["_index_sampler_state"]
    assert saved == PeriodicBatchSampler(y, seg, **kw).state_dict() | {"next_batch": 10}
    other = loader(seed=4)
    other.load_state_dict(state)  # applied when iterated
    with pytest.raises(ValueError, match="belongs to another stream"):
        next(iter(other))
    buffer = io.BytesIO()
    torch.save(state, buffer)  # what a checkpoint does with it
    buffer.seek(0)
    second = loader()
    second.load_state_dict(torch.load(buffer, weights_only=True))
    tail = [batch.tolist() for batch in itertools.islice(second, 15)]
    assert head + tail == straight
