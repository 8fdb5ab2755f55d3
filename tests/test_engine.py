"""The evaluation engine: named statistics, thread safety, seeds, and its undefined paths."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import segeval as se
from segeval._kernels import AUCKernel, WLLKernel
from segeval.engine import evaluate_part
from segeval.op_spread import diameter
from segeval.resampling import BootstrapOptions, Resampler, bootstrap_distribution
from segeval.validation import InputError, UndefinedMetricWarning


def problem(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.clip(0.5 * y + rng.normal(0.25, 0.2, n), 0, 1)
    b = np.clip(0.4 * y + rng.normal(0.3, 0.2, n), 0, 1)
    return y, a, b


def test_statistics_are_read_by_name():
    y, a, b = problem(0)
    y8 = y.astype(np.int8)
    stats = {("auc", "b"): AUCKernel(y8, b), ("wll", "a"): WLLKernel(y8, a, 1e-15)}
    draws = bootstrap_distribution(stats, Resampler(y8), n_boot=20, seed=0)
    assert draws.estimate(("auc", "b"))[0] == pytest.approx(se.roc_auc(y, b))
    assert draws.estimate(("wll", "a"))[0] == pytest.approx(se.weighted_log_loss(y, a))
    single = se.bootstrap_auc(y, b, n_boot=20, seed=0, return_distribution=True)
    assert np.array_equal(draws.of(("auc", "b"))[:, 0], single.distribution)


def test_four_threads_give_exactly_the_serial_results():
    # Before: a module-level _JOB was shared by concurrent calls (14 of 20 CIs wrong).
    jobs = [(problem(k), k) for k in range(20)]

    def call(job):
        (y, a, b), seed = job
        return se.bootstrap_auc(y, a, n_boot=300, seed=seed), se.bootstrap_delta_auc(
            y, a, b, n_boot=200, seed=seed
        )

    serial = [call(job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(call, jobs))
    assert threaded == serial


def test_the_same_seed_sequence_object_gives_the_same_result():
    # Before: SeedSequence.spawn mutated the seed, so a second call drew other resamples.
    y, a, _ = problem(1)
    seed = np.random.SeedSequence(7)
    first = se.bootstrap_auc(y, a, n_boot=100, seed=seed)
    assert se.bootstrap_auc(y, a, n_boot=100, seed=seed) == first
    replay = list(se.bootstrap_indices(y, n_boot=100, seed=seed))
    assert se.bootstrap_auc(y, a, n_boot=100, seed=seed) == first
    fresh = list(se.bootstrap_indices(y, n_boot=100, seed=np.random.SeedSequence(7)))
    assert all(np.array_equal(r, f) for r, f in zip(replay, fresh, strict=True))
    assert se.bootstrap_auc(y, a, n_boot=100, seed=7) == first


def test_dropped_resamples_are_counted_in_a_warning():
    y = np.array([0] * 20 + [1])
    s = np.linspace(0, 1, 21)
    with pytest.warns(UndefinedMetricWarning, match=r"\d+ of 200 resamples hold one class only"):
        r = se.bootstrap_auc(y, s, n_boot=200, seed=0)
    assert r.n_boot_undefined > 0


@pytest.mark.parametrize("labels", [[1, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 1]])
def test_delong_with_one_case_of_a_class_is_undefined(labels):
    # Before: a finite, too small standard error (p = 2.6e-20 where pROC says NA).
    a = [0.9, 0.1, 0.2, 0.3, 0.4, 0.5]
    b = [0.5, 0.2, 0.1, 0.4, 0.3, 0.35]
    with pytest.warns(UndefinedMetricWarning, match="at least two positives and two negatives"):
        r = se.delong_delta_auc_test(labels, a, b)
    assert np.isnan(r.p_value) and np.isnan(r.se)
    with pytest.warns(UndefinedMetricWarning, match="at least two positives and two negatives"):
        assert np.isnan(se.delong_auc_ci(labels, a).se)


def test_op_spread_with_one_usable_segment_is_undefined():
    # Before: spread 0 with CI [0, 0], read as perfectly synchronized.
    y = [0, 1, 0, 1, 0, 0]
    s = [0.1, 0.9, 0.3, 0.7, 0.5, 0.2]
    with pytest.warns(UndefinedMetricWarning, match="needs two segments with both classes"):
        r = se.op_synchronization(y, s, ["A"] * 4 + ["B"] * 2, thresholds=[0.5], n_boot=20)
    assert np.isnan(r.spread.spread).all() and np.isnan(r.spread.ci_low).all()


@pytest.mark.parametrize("ci", [1.5, 0, -0.1, "0.9"])
def test_ci_is_validated(ci):
    y, a, _ = problem(2, 40)
    with pytest.raises(InputError, match="ci must be a confidence level"):
        BootstrapOptions.make(ci=ci)
    with pytest.raises(InputError, match="ci must be a confidence level"):
        se.segment_table(y, a, n_boot=10, ci=ci)


@pytest.mark.parametrize("k", [1, 2, 3, 47, 49, 200, 2000])
def test_diameter_equals_brute_force(k):
    rng = np.random.default_rng(k)
    for points in (
        rng.random((k, 2)),
        np.round(rng.random((k, 2)), 1),  # many ties
        np.column_stack([np.linspace(0, 1, k), np.linspace(0, 0.5, k)]),  # collinear
        np.zeros((k, 2)),  # one point
    ):
        d = points[:, None, :] - points[None, :, :]
        assert diameter(points) == np.sqrt((d * d).sum(axis=-1)).max()


def test_a_part_holds_metrics_comparisons_and_spreads_for_all_models():
    y, a, b = problem(3, 400)
    seg = se.segment_keys(
        __import__("pandas").DataFrame({"g": np.arange(400) % 3}), ["g"]
    )  # three segments
    options = BootstrapOptions.make(n_boot=50, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        part = evaluate_part(
            y.astype(np.int8),
            {"a": a, "b": b},
            options=options,
            baseline="a",
            segments=seg,
            thresholds=np.array([0.3, 0.6]),
        )
    assert set(part.metrics) == {("wll", "a"), ("auc", "a"), ("wll", "b"), ("auc", "b")}
    direct = se.bootstrap_delta_auc(y, a, b, n_boot=50, seed=1)
    assert part.comparisons["b"] == direct
    sync = se.op_synchronization(y, b, seg, thresholds=[0.3, 0.6], n_boot=50, seed=1)
    assert part.spreads["b"].table.equals(sync.spread)


def test_result_reprs_are_readable():
    y, a, b = problem(4, 60)
    for result in (
        se.bootstrap_auc(y, a, n_boot=20),
        se.bootstrap_delta_auc(y, a, b, n_boot=20),
        se.delong_delta_auc_test(y, a, b),
    ):
        text = repr(result)
        assert "np.float64" not in text
        assert max(len(line) for line in text.splitlines()) <= 130


@pytest.mark.parametrize("scheme", ["rows", "stratified", "cluster"])
def test_batched_resamples_equal_one_at_a_time(scheme):
    # Small parts are evaluated for many resamples at once; same draws, same values (to 1e-12,
    # the summation order differs).
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 60).astype(np.int8)
    s = np.round(rng.random(60), 1)  # ties
    clusters = rng.integers(0, 20, 60) if scheme == "cluster" else None
    resampler = Resampler(y, resample=scheme, clusters=clusters)
    seeds = [np.random.SeedSequence(3, spawn_key=(b,)) for b in range(30)]
    local = np.stack([resampler.local_draw(np.random.default_rng(q)) for q in seeds])
    counts = resampler.counts_matrix(local)
    for b, q in enumerate(seeds):
        draws = resampler.draw(np.random.default_rng(q))
        assert np.array_equal(counts[b], resampler.counts(draws))
    totals = counts.sum(axis=1)
    for kernel in (AUCKernel(y, s), WLLKernel(y, s, 1e-15)):
        one = np.array([kernel(c, t) for c, t in zip(counts, totals, strict=True)])
        np.testing.assert_allclose(kernel.batch(counts, totals), one, rtol=1e-12)


def test_draw_cache_replays_the_same_resamples():
    from segeval.resampling import DrawCache

    y, a, _ = problem(6, 50)
    y8 = y.astype(np.int8)
    cache = DrawCache()
    stats = {"auc": AUCKernel(y8, a)}
    first = bootstrap_distribution(stats, Resampler(y8), n_boot=40, seed=2, cache=cache)
    again = bootstrap_distribution(stats, Resampler(y8), n_boot=40, seed=2, cache=cache)
    alone = bootstrap_distribution(stats, Resampler(y8), n_boot=40, seed=2)
    assert len(cache.draws) == 1
    assert np.array_equal(first.of("auc"), again.of("auc"))
    assert np.array_equal(first.of("auc"), alone.of("auc"))


def test_extra_statistics_are_drawn_on_the_same_resamples():
    """A caller's own statistic of row weights comes back raw, resample by resample, on the
    draws of the metrics (replayed with bootstrap_indices)."""
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 300).astype(np.int8)
    s = rng.random(300)

    def mean_score(w, total):
        return np.array([np.dot(w, s) / total, total])

    options = BootstrapOptions.make(n_boot=15, seed=3)
    part = evaluate_part(y, {"m": s}, options=options, extra={"mine": mean_score}, keep=True)
    assert part.extra is not None
    draws = part.extra.of("mine")
    for b, idx in enumerate(se.bootstrap_indices(y, n_boot=15, seed=3)):
        assert draws[b, 0] == pytest.approx(s[idx].mean(), rel=1e-12)
        assert draws[b, 1] == idx.size
    assert part.extra.estimate("mine")[0] == pytest.approx(s.mean(), rel=1e-12)


def test_a_part_with_a_single_case_of_a_class_has_no_interval():
    """One positive: every resample holds it or not, and the percentile interval used to
    collapse to (1.000, 1.000); now every interval, p-value and verdict there is undefined,
    with the reason, as DeLong's is."""
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(40, dtype=np.int8), 1, np.zeros(40, dtype=np.int8), [1] * 10]
    seg = ["lone"] * 41 + ["fine"] * 50
    a, b = rng.random(y.size), np.clip(rng.random(y.size) + 0.3 * y, 0, 1)
    with pytest.warns(UndefinedMetricWarning, match="Segment lone has a single malignant"):
        t = se.segment_table(y, b, seg, n_boot=40)
    lone = t[t.segment == "lone"].iloc[0]
    assert lone.auc > 0 and np.isnan(lone.auc_ci_low) and np.isnan(lone.wll_ci_high)
    assert "single malignant image" in lone.note
    fine = t[t.segment == "fine"].iloc[0]
    assert not np.isnan(fine.auc_ci_low) and fine.note == ""
    frame = pd.DataFrame(
        {"image_id": np.tile(np.arange(y.size), 2), "model": ["a"] * y.size + ["b"] * y.size,
         "label": np.tile(y, 2), "score": np.r_[a, b], "site": seg * 2}
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        ev = se.evaluate(frame, segment_by="site", baseline="a", n_boot=40)
    row = ev.comparisons[ev.comparisons.segment == "lone"].iloc[0]
    assert not np.isnan(row.delta_auc)
    assert np.isnan(row.delta_ci_low) and np.isnan(row.p_value) and np.isnan(row.p_value_delong)
    assert row.verdict == "undefined" and row.verdict_holm == "undefined"
    with pytest.warns(UndefinedMetricWarning, match="single benign image"):
        r = se.bootstrap_delta_auc([0, 1, 1, 1], [0.1, 0.5, 0.7, 0.2], [0.2, 0.4, 0.9, 0.8])
    assert np.isnan(r.ci_low) and r.verdict == "undefined" and r.delta == 0
