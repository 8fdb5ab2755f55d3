"""Periodic sampling core: Algorithm 1 against the paper's slot-by-slot loop, and the stream."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segtrain import sampler as sampler_module
from segtrain import sampling
from segtrain.sampling import STRATEGIES, IndexStream, Strategy, build_pattern, make_plan


def reference_pattern(n_min):
    """Algorithm 1 literally: DSs in ascending n_i (ties: lower id), slot by slot with wrap."""
    total = int(sum(n_min))
    pattern = [-1] * total
    for ds in sorted(range(len(n_min)), key=lambda i: (n_min[i], i)):
        for j in range(n_min[ds]):
            slot = j * total // n_min[ds]
            while pattern[slot] != -1:
                slot = (slot + 1) % total
            pattern[slot] = ds
    return pattern


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=8).filter(lambda n: sum(n) > 0))
def test_pattern_equals_the_slot_by_slot_algorithm(n_min):
    assert build_pattern(n_min).tolist() == reference_pattern(n_min)


def test_pattern_with_many_segments_and_collisions():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = rng.geometric(0.02, rng.integers(20, 60))
        assert build_pattern(n).tolist() == reference_pattern(list(n))


def test_figure_2_example():
    n_min = [2, 5, 10, 20]
    pattern = build_pattern(n_min)
    assert pattern.size == 37
    assert np.bincount(pattern).tolist() == n_min
    # The rarest DS is placed first, with no collision: its gaps are floor or ceil of L / n.
    pos = np.flatnonzero(pattern == 0)
    assert np.diff(np.r_[pos, pos[0] + 37]).tolist() == [18, 19]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=6).filter(lambda n: sum(n) > 0))
def test_each_ds_appears_n_times_and_the_first_is_evenly_spaced(n_min):
    pattern = build_pattern(n_min)
    assert np.bincount(pattern, minlength=len(n_min)).tolist() == list(n_min)
    first = min((n, i) for i, n in enumerate(n_min) if n > 0)[1]
    pos = np.flatnonzero(pattern == first)
    gaps = np.diff(np.r_[pos, pos[0] + pattern.size])
    period = pattern.size / n_min[first]
    assert set(gaps.tolist()) <= {int(np.floor(period)), int(np.ceil(period))}


def make_data(seed=0, n=600, segments=4):
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, segments, n)
    y = (rng.random(n) < 0.08 + 0.1 * seg).astype(np.int8)
    y[:segments], seg[:segments] = 1, np.arange(segments)  # each DS has both labels
    return y, seg


@pytest.mark.parametrize(
    "strategy", ["periodic", "balanced-segments", "balanced-labels", "square-root"]
)
def test_stream_windows_alternation_and_pools(strategy):
    y, seg = make_data()
    stream = IndexStream(y, seg, strategy, seed=3)
    big = 20 * max(stream.pattern.size, 200)
    idx = stream.indices(0, big)
    ds = np.zeros(y.size, int) if strategy == "balanced-labels" else seg
    L = stream.pattern.size
    quota = np.bincount(stream.pattern, minlength=ds.max() + 1)
    # Any window of k*L positions draws DS i exactly k * n_i times.
    for start in (0, 7, 3 * L + 1):
        counts = np.bincount(ds[idx[start : start + 5 * L]], minlength=ds.max() + 1)
        assert counts.tolist() == (5 * quota).tolist()
    for d in np.unique(ds):
        labels = y[idx[ds[idx] == d]]
        assert (labels[1:] != labels[:-1]).all()  # labels alternate within the DS
        for label in (0, 1):
            pool = np.flatnonzero((ds == d) & (y == label))
            drawn = idx[(ds[idx] == d) & (y[idx] == label)]
            # Every sample of the pool is drawn once before any repeats, epoch after epoch.
            for e in range(drawn.size // pool.size):
                assert sorted(drawn[e * pool.size : (e + 1) * pool.size]) == pool.tolist()
            assert np.unique(drawn[: pool.size]).size == min(pool.size, drawn.size)


def test_stream_is_a_pure_function_of_its_inputs_and_positions():
    y, seg = make_data()
    a = IndexStream(y, seg, "periodic", seed=5)
    b = IndexStream(y, seg, "periodic", seed=5)
    full = a.indices(0, 5000)
    assert np.array_equal(full, b.indices(0, 5000))
    # Random access gives the same as reading in order, whatever was read before.
    assert np.array_equal(b.indices(1234, 1300), full[1234:1300])
    assert np.array_equal(b.indices_at(np.array([[10, 4000], [3, 3]])), full[[[10, 4000], [3, 3]]])
    assert not np.array_equal(IndexStream(y, seg, "periodic", seed=6).indices(0, 5000), full)


def test_single_segment_draws_one_segment_only():
    y, seg = make_data()
    stream = IndexStream(y, seg, "single-segment", seed=0, segment="2")
    idx = stream.indices(0, 1000)
    assert set(seg[idx].tolist()) == {2}
    assert abs(y[idx].mean() - 0.5) <= 0.001


def test_periodic_proportions_follow_the_rarer_label():
    y, seg = make_data()
    plan = make_plan(y, seg, "periodic")
    rarer = [
        min(int(((seg == d) & (y == 1)).sum()), int(((seg == d) & (y == 0)).sum()))
        for d in range(4)
    ]
    assert plan.quota.tolist() == rarer
    np.testing.assert_allclose(plan.proportion, np.array(rarer) / sum(rarer))
    assert make_plan(y, seg, "balanced-segments").proportion.tolist() == [0.25] * 4
    bl = make_plan(y, seg, "balanced-labels").proportion
    np.testing.assert_allclose(bl.sum(), 1.0)


def test_one_label_segment_is_left_out_with_a_warning():
    y, seg = make_data()
    y = y.copy()
    y[seg == 1] = 0
    with pytest.warns(UserWarning, match="one label only are left out of the sampling: 1"):
        stream = IndexStream(y, seg, "periodic", seed=0)
    assert 1 not in seg[stream.indices(0, 2000)]
    assert stream.plan.left_out == ("1",)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": [0, 2, 1, 0]}, "labels must contain only 0 and 1; got 2"),
        ({"segments": ["a", "b"]}, "labels has 4, segments has 2"),
        ({"labels": [0, 0, 0, 0]}, "Every segment is left out"),
        (
            {"strategy": "random"},
            "strategy must be one of periodic, balanced-segments, balanced-labels, "
            "single-segment, square-root; got 'random'",
        ),
        ({"strategy": "single-segment"}, "needs segment= one of a, b; got None"),
        ({"segment": "a"}, "segment= is only used with strategy 'single-segment'"),
        ({"seed": -3}, "seed must be a non-negative integer"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"labels": [0, 1, 1, 0], "segments": ["a", "a", "b", "b"], "strategy": "periodic"}
    args.update(kwargs)
    warns = (
        pytest.warns(UserWarning, match="left out")
        if "Every" in match
        else contextlib.nullcontext()
    )
    with pytest.raises(ValueError, match=match), warns:
        IndexStream(args.pop("labels"), args.pop("segments"), args.pop("strategy"), **args)


def test_bad_pattern_input():
    with pytest.raises(ValueError, match="non-negative integers"):
        build_pattern([1, -1])
    with pytest.raises(ValueError, match="sums to 0"):
        build_pattern([0, 0])


def test_square_root_shares_follow_the_square_root_of_the_rarer_label():
    # Four DSs with rarer labels 1, 4, 25 and 100: shares 1:2:5:10 (sqrt), where periodic gives
    # 1:4:25:100 and balanced-segments 1:1:1:1.
    rarer = [1, 4, 25, 100]
    seg = np.repeat(np.arange(4), [2 * n + 3 for n in rarer])
    y = np.concatenate([np.r_[np.ones(n), np.zeros(n + 3)] for n in rarer]).astype(int)
    plan = make_plan(y, seg, "square-root")
    assert plan.quota.tolist() == [10, 20, 50, 100]  # sqrt(n_i * max n): the largest keeps 100
    np.testing.assert_allclose(plan.proportion, np.sqrt(rarer) / np.sqrt(rarer).sum(), rtol=1e-12)
    stream = IndexStream(y, seg, "square-root", seed=0)
    drawn = np.bincount(seg[stream.indices(0, 180 * 4)], minlength=4)  # 4 whole patterns
    assert drawn.tolist() == [40, 80, 200, 400]


def test_square_root_rounding_keeps_every_usable_segment():
    rng = np.random.default_rng(1)
    for _ in range(50):
        rarer = rng.integers(1, 5000, rng.integers(2, 9))
        quota = STRATEGIES["square-root"].quota(rarer)
        assert (quota >= 1).all() and quota.max() == rarer.max()
        share = quota / quota.sum()
        exact = np.sqrt(rarer) / np.sqrt(rarer).sum()
        # Each quota is within 1/2 of its exact value: shares move by a relative 1/(q_min - 1/2).
        assert np.all(np.abs(share - exact) <= exact / (quota.min() - 0.5) + 1e-12)


def test_the_registry_is_the_strategy_type_and_every_entry_streams():
    from typing import get_args

    assert list(STRATEGIES) == list(get_args(Strategy))
    y, seg = make_data()
    for name, spec in STRATEGIES.items():
        segment = "2" if spec.needs_segment else None
        stream = IndexStream(y, seg, name, seed=0, segment=segment)
        assert stream.plan.strategy == name and stream.plan.pooled == spec.pooled
        assert stream.indices(0, 100).size == 100


def test_the_sampler_checks_labels_and_segments_once(monkeypatch):
    y, seg = make_data()
    calls = []
    real = sampling.check_labels

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sampling, "check_labels", counting)
    monkeypatch.setattr(sampling, "as_segments", _counting(sampling.as_segments, calls))
    sampler_module.PeriodicBatchSampler(y, seg, batch_size=4, seed=0)
    assert len(calls) == 2  # one label check, one segment check


def _counting(function, calls):
    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return counted
