"""Bootstrap: reproducibility, resampling schemes, and equality with a slow reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

import segeval as se
from segeval._kernels import AUCKernel
from segeval.resampling import Resampler, bootstrap_distribution
from tests.conftest import random_problem
from tests.test_metrics import brute_force_auc, wll_reference

# The fast path sums the same integers as the reference but divides in another order.
TOL = 1e-12


def slow_reference(y, scores, indices, statistic):
    """Per-resample statistic by direct recomputation on y[idx], NaN when one class is drawn."""
    out = []
    for idx in indices:
        yb = y[idx]
        if yb.min() == yb.max():
            out.append([np.nan] * len(scores))
        else:
            out.append([statistic(yb, s[idx]) for s in scores])
    return np.array(out)


def percentile_ci(values, ci=0.95):
    v = values[~np.isnan(values)]
    return np.percentile(v, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])


@pytest.mark.parametrize("resample", ["rows", "stratified", "cluster"])
@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_auc_equals_slow_reference_with_same_indices(resample, ties):
    rng = np.random.default_rng(7)
    y, s = random_problem(rng, 40, prevalence=0.25, ties=ties)
    clusters = rng.integers(0, 15, 40) if resample == "cluster" else None
    kw = dict(n_boot=300, resample=resample, clusters=clusters, seed=11)
    res = se.bootstrap_auc(y, s, return_distribution=True, **kw)
    indices = list(se.bootstrap_indices(y, **kw))
    ref = slow_reference(y, [s], indices, roc_auc_score)[:, 0]
    np.testing.assert_allclose(res.distribution, ref, atol=TOL)
    np.testing.assert_array_equal(np.isnan(res.distribution), np.isnan(ref))
    lo, hi = percentile_ci(ref)
    assert res.ci_low == pytest.approx(lo, abs=TOL)
    assert res.ci_high == pytest.approx(hi, abs=TOL)
    assert res.se == pytest.approx(np.nanstd(ref, ddof=1), abs=TOL)
    assert res.estimate == pytest.approx(roc_auc_score(y, s), abs=TOL)
    assert res.n_boot_used + res.n_boot_undefined == 300
    assert res.n_boot_undefined == int(np.isnan(ref).sum())


def test_bootstrap_wll_equals_slow_reference():
    rng = np.random.default_rng(8)
    y, s = random_problem(rng, 30, prevalence=0.3)
    res = se.bootstrap_wll(y, s, n_boot=200, seed=3, return_distribution=True)
    ref = slow_reference(y, [s], se.bootstrap_indices(y, n_boot=200, seed=3), wll_reference)[:, 0]
    np.testing.assert_allclose(res.distribution, ref, rtol=1e-12)
    assert res.estimate == pytest.approx(wll_reference(y, s), rel=1e-12)


@pytest.mark.parametrize("resample", ["rows", "stratified", "cluster"])
def test_delta_auc_equals_slow_paired_reference(resample):
    rng = np.random.default_rng(9)
    y, a = random_problem(rng, 50, prevalence=0.3, ties=True)
    b = np.clip(a + rng.normal(0, 0.15, 50), 0, 1)
    clusters = np.repeat(np.arange(25), 2) if resample == "cluster" else None
    kw = dict(n_boot=400, resample=resample, clusters=clusters, seed=5)
    res = se.bootstrap_delta_auc(y, a, b, return_distribution=True, **kw)
    ref = slow_reference(y, [a, b], se.bootstrap_indices(y, **kw), brute_force_auc)
    delta = ref[:, 1] - ref[:, 0]
    np.testing.assert_allclose(res.distribution, delta, atol=TOL)
    lo, hi = percentile_ci(delta)
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi), abs=TOL)
    assert res.delta == pytest.approx(brute_force_auc(y, b) - brute_force_auc(y, a), abs=TOL)
    assert res.auc_a.ci_low == pytest.approx(percentile_ci(ref[:, 0])[0], abs=TOL)
    assert res.auc_b.ci_high == pytest.approx(percentile_ci(ref[:, 1])[1], abs=TOL)
    sd = np.nanstd(delta, ddof=1)
    assert res.p_value_bootstrap == pytest.approx(2 * norm.sf(abs(res.delta) / sd), rel=1e-9)
    assert res.p_value == se.p_value_from_ci(res.delta, res.ci_low, res.ci_high)
    assert res.verdict == se.verdict(res.ci_low, res.ci_high, res.p_value)


def test_same_seed_is_bit_identical_for_any_n_jobs(monkeypatch):
    # Force the forked workers even on this small job.
    monkeypatch.setattr("segeval.resampling.PARALLEL_MIN_DRAWS", 0)
    rng = np.random.default_rng(10)
    y, a = random_problem(rng, 500)
    b = np.clip(a + rng.normal(0, 0.1, 500), 0, 1)
    runs = [
        se.bootstrap_delta_auc(y, a, b, n_boot=101, seed=42, n_jobs=j, return_distribution=True)
        for j in (1, 2, 3, 1)
    ]
    for r in runs[1:]:
        assert r.distribution.tobytes() == runs[0].distribution.tobytes()
        assert dataclasses.astuple(r)[:-1] == dataclasses.astuple(runs[0])[:-1]
    other = se.bootstrap_delta_auc(y, a, b, n_boot=101, seed=43, return_distribution=True)
    assert other.distribution.tobytes() != runs[0].distribution.tobytes()


@pytest.mark.parametrize("parallel_min_draws", [0, 10**12])
def test_progress_counts_every_resample(monkeypatch, parallel_min_draws):
    monkeypatch.setattr("segeval.resampling.PARALLEL_MIN_DRAWS", parallel_min_draws)
    y, s = random_problem(np.random.default_rng(0), 2500)  # above BATCH_MAX_ROWS
    resampler = Resampler(np.asarray(y, np.int8))
    seen = []
    result = bootstrap_distribution(
        {"auc": AUCKernel(np.asarray(y, np.int8), s)},
        resampler,
        n_boot=37,
        seed=1,
        n_jobs=2,
        progress=seen.append,
    )
    assert sum(seen) == 37 and len(seen) > 1
    assert result.of("auc").shape == (37, 1)
    assert result.estimate("auc")[0] == pytest.approx(roc_auc_score(y, s))


def test_generator_seed_is_reproducible():
    y, s = random_problem(np.random.default_rng(0), 80)
    r1 = se.bootstrap_auc(y, s, n_boot=50, seed=np.random.default_rng(5))
    r2 = se.bootstrap_auc(y, s, n_boot=50, seed=np.random.default_rng(5))
    assert r1 == r2


def test_rows_resample_uniformly_with_replacement():
    y = np.array([0, 1] * 50)
    idx = np.concatenate(list(se.bootstrap_indices(y, n_boot=400, seed=0)))
    assert idx.size == 400 * 100
    counts = np.bincount(idx, minlength=100)
    # Each row is drawn 400 times on average; a chi-square-sized deviation is allowed.
    assert abs(counts.mean() - 400) < 1e-9
    assert counts.min() > 300 and counts.max() < 500
    # Class counts vary from resample to resample (unlike stratified).
    n_pos = {int(y[i].sum()) for i in se.bootstrap_indices(y, n_boot=50, seed=0)}
    assert len(n_pos) > 5


def test_stratified_keeps_class_counts():
    y, _ = random_problem(np.random.default_rng(1), 37, prevalence=0.2)
    for idx in se.bootstrap_indices(y, n_boot=50, resample="stratified", seed=1):
        assert idx.size == 37
        assert y[idx].sum() == y.sum()


def test_cluster_keeps_each_patient_whole():
    rng = np.random.default_rng(2)
    patients = rng.integers(0, 12, 60)
    y = (rng.random(60) < 0.4).astype(int)
    sizes = np.bincount(patients)
    for idx in se.bootstrap_indices(y, n_boot=50, resample="cluster", clusters=patients, seed=2):
        drawn = np.bincount(patients[idx], minlength=sizes.size)
        # Every patient appears a whole number of times, all its images each time.
        nonzero = sizes > 0
        assert np.all(drawn[nonzero] % sizes[nonzero] == 0)
        assert (drawn[nonzero] // sizes[nonzero]).sum() == np.count_nonzero(nonzero)


def test_counts_and_indices_come_from_the_same_draws():
    rng = np.random.default_rng(4)
    y = (rng.random(30) < 0.5).astype(np.int8)
    patients = rng.integers(0, 9, 30)
    for resample, cl in (("rows", None), ("stratified", None), ("cluster", patients)):
        r = Resampler(y, resample=resample, clusters=cl)
        draws = r.draw(np.random.default_rng(0))
        np.testing.assert_array_equal(r.counts(draws), np.bincount(r.indices(draws), minlength=30))


def test_undefined_resamples_are_excluded_and_counted():
    y = np.array([1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.5])
    res = se.bootstrap_auc(y, s, n_boot=500, seed=0, return_distribution=True)
    # P(the positive is never drawn) = (5/6)^6 ~ 0.33
    assert 100 < res.n_boot_undefined < 240
    assert res.n_boot_used == 500 - res.n_boot_undefined
    assert np.isnan(res.distribution).sum() == res.n_boot_undefined


def test_one_class_is_undefined_not_an_error():
    with pytest.warns(se.UndefinedMetricWarning, match="Only negatives"):
        r = se.bootstrap_auc([0, 0, 0], [0.1, 0.2, 0.3], n_boot=10)
    assert np.isnan(r.estimate) and np.isnan(r.ci_low) and r.n_boot_used == 0
    with pytest.warns(se.UndefinedMetricWarning, match="Only positives"):
        d = se.bootstrap_delta_auc([1, 1], [0.1, 0.2], [0.3, 0.4], n_boot=10)
    assert np.isnan(d.delta) and d.verdict == "undefined"


def test_identical_models_give_zero_delta_and_p_one():
    y, s = random_problem(np.random.default_rng(3), 100)
    r = se.bootstrap_delta_auc(y, s, s, n_boot=50)
    assert r.delta == 0 and r.ci_low == 0 and r.ci_high == 0
    assert r.p_value == 1.0 and r.p_value_bootstrap == 1.0
    assert r.verdict == "not significant"


def test_clear_improvement_is_a_significant_increase():
    rng = np.random.default_rng(6)
    y = (rng.random(2000) < 0.5).astype(int)
    a = np.clip(rng.normal(0.45 + 0.05 * y, 0.2), 0, 1)
    b = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    r = se.bootstrap_delta_auc(y, a, b, n_boot=300)
    assert r.delta > 0.1 and r.ci_low > 0 and r.p_value < 0.05
    assert r.verdict == "significant increase"
    assert se.bootstrap_delta_auc(y, b, a, n_boot=300).verdict == "significant decrease"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_boot": 0}, "n_boot must be an integer >= 1; got 0"),
        ({"n_boot": 2.5}, "n_boot must be an integer >= 1; got 2.5"),
        ({"ci": 1.0}, r"ci must be a confidence level strictly between 0 and 1; got 1.0"),
        ({"ci": 0}, "ci must be a confidence level"),
        ({"resample": "patients"}, "resample must be one of"),
        ({"resample": "cluster"}, 'resample="cluster" needs clusters'),
        ({"resample": "cluster", "clusters": [1, 2]}, "y_true has 4, clusters has 2"),
        ({"clusters": [1, 2, 3, 4]}, 'clusters are only used with resample="cluster"'),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"seed": "abc"}, "seed must be an int"),
        ({"n_jobs": 0}, "n_jobs must be an integer >= 1"),
    ],
)
def test_bad_options(kwargs, match):
    y, a, b = [0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6], [0.2, 0.7, 0.1, 0.9]
    with pytest.raises(ValueError, match=match):
        se.bootstrap_auc(y, a, **kwargs)
    with pytest.raises(ValueError, match=match):
        se.bootstrap_delta_auc(y, a, b, **kwargs)


def test_bad_arrays():
    with pytest.raises(ValueError, match="y_true has 3, score_a has 3, score_b has 2"):
        se.bootstrap_delta_auc([0, 1, 0], [0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="score_b must be finite; got nan"):
        se.bootstrap_delta_auc([0, 1], [0.1, 0.2], [0.1, np.nan])
    with pytest.raises(ValueError, match="y_true must contain only 0 and 1; got 3"):
        se.bootstrap_auc([0, 3], [0.1, 0.2])
    with pytest.raises(ValueError, match="y_score must be probabilities"):
        se.bootstrap_wll([0, 1], [0.1, 2.0])
    with pytest.raises(ValueError, match="y_true is empty"):
        se.bootstrap_auc([], [])
