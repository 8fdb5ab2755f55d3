"""Poisson resampling: counts that are a function of (unit id, resample, seed) alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import segeval as se
from segeval.engine import evaluate_part
from segeval.resampling import (
    _POISSON_THRESHOLDS,
    BootstrapOptions,
    Resampler,
    _poisson_inverse,
    poisson_counts,
    poisson_seed,
    unit_hashes,
)
from segeval.synthetic import make_predictions


def ids(n: int, prefix: str = "img") -> np.ndarray:
    return np.array([f"{prefix}{i:07d}" for i in range(n)], dtype=object)


def test_counts_are_a_function_of_the_id_alone():
    h = unit_hashes(ids(5000))
    counts = poisson_counts(h, 7, range(20))
    perm = np.random.default_rng(0).permutation(h.size)
    assert np.array_equal(poisson_counts(h[perm], 7, range(20)), counts[:, perm])
    # Any subset, any block of resamples: the same counts (partitions and workers agree).
    assert np.array_equal(poisson_counts(h[100:300], 7, range(5, 9)), counts[5:9, 100:300])
    assert not np.array_equal(poisson_counts(h, 8, range(20)), counts)  # the seed matters
    assert counts.dtype == np.float64


def test_the_counts_never_change():
    """Counts fixed when the Poisson resampling was introduced: a faster drawing must give the
    same ones (saved results and other machines depend on them)."""
    c = poisson_counts(unit_hashes(ids(4000)), 11, range(3, 9))
    assert c[:, :12].astype(int).tolist() == [
        [1, 2, 1, 1, 1, 0, 1, 3, 2, 0, 1, 1], [1, 0, 1, 3, 0, 0, 0, 3, 1, 1, 3, 0],
        [2, 0, 1, 0, 1, 1, 1, 2, 0, 2, 2, 0], [1, 1, 2, 2, 1, 1, 2, 1, 1, 1, 1, 2],
        [2, 3, 1, 1, 0, 2, 0, 2, 1, 1, 0, 1], [2, 1, 3, 1, 1, 0, 0, 1, 1, 2, 1, 1],
    ]  # fmt: skip
    assert (int(c.sum()), int((c * np.arange(4000)).sum())) == (24238, 48439773)


def test_the_bucket_table_inverts_the_cdf_like_a_search():
    """The lookup by top bits equals a binary search over the thresholds, at every threshold,
    one step either side of it, and at random points."""
    t = _POISSON_THRESHOLDS.astype(np.int64)
    edges = np.concatenate([t - 1, t, t + 1, [0, 2**53 - 1]])
    edges = edges[(edges >= 0) & (edges < 2**53)].astype(np.uint64)
    rng = np.random.default_rng(0)
    u = np.concatenate([edges, rng.integers(0, 2**53, 200_000, dtype=np.uint64)])
    expected = np.searchsorted(_POISSON_THRESHOLDS, u, side="right").astype(np.float64)
    assert np.array_equal(_poisson_inverse(u), expected)


def test_ids_hash_by_their_text_and_stably():
    assert np.array_equal(unit_hashes([5, 17]), unit_hashes(["5", "17"]))
    # A fixed value: the hash must not change across processes, machines or versions.
    assert int(unit_hashes(["a"])[0]) == int(unit_hashes(np.array(["a"], dtype=object))[0])
    assert unit_hashes(["a", "b"])[0] != unit_hashes(["a", "b"])[1]


def test_counts_are_poisson_one():
    # 10^6 (id, resample) cells: the mean's standard error is 1e-3 and the variance's
    # sqrt((mu4 - 1) / N) = sqrt(3e-6) = 1.7e-3; tolerances are 5 standard errors.
    c = poisson_counts(unit_hashes(ids(20_000)), poisson_seed(0), range(50)).ravel()
    assert abs(c.mean() - 1) < 5e-3
    assert abs(c.var() - 1) < 9e-3
    observed = np.bincount(c.astype(int), minlength=8)[:8]
    expected = stats.poisson.pmf(np.arange(8), 1) * c.size
    assert np.all(np.abs(observed - expected) < 5 * np.sqrt(expected) + 5)


def test_the_seed_key_is_derived_without_mutating_the_seed():
    seq = np.random.SeedSequence(3)
    assert poisson_seed(seq) == poisson_seed(seq) == poisson_seed(3)
    assert poisson_seed(3) != poisson_seed(4)


def test_clusters_get_one_count_for_all_their_rows():
    y = np.array([0, 1, 0, 1, 0, 1], dtype=np.int8)
    patients = np.array(["p1", "p1", "p2", "p3", "p3", "p3"])
    r = Resampler(y, resample="poisson", clusters=patients, ids=ids(6))
    counts = r.poisson_block(11, range(30))
    assert np.array_equal(counts[:, 0], counts[:, 1])
    assert np.array_equal(counts[:, 3], counts[:, 5])
    assert not np.array_equal(counts[:, 0], counts[:, 2])


def binormal(n: int, auc_shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int8)
    return y, 1 / (1 + np.exp(-(rng.normal(size=n) + auc_shift * y)))


def test_permuted_rows_give_bit_identical_distributions():
    y, s = binormal(3000, 1.0, 0)  # above BATCH_MAX_ROWS: one resample at a time
    row_ids = ids(y.size)
    options = BootstrapOptions.make(n_boot=30, resample="poisson", seed=5)
    perm = np.random.default_rng(1).permutation(y.size)
    a = evaluate_part(y, {"m": s}, options=options, ids=row_ids, keep=True)
    b = evaluate_part(y[perm], {"m": s[perm]}, options=options, ids=row_ids[perm], keep=True)
    for key in (("auc", "m"), ("wll", "m")):
        assert a.metrics[key].distribution is not None
        assert np.array_equal(a.metrics[key].distribution, b.metrics[key].distribution)
        assert a.metrics[key] == b.metrics[key]
    # Small parts go through the batched kernels: the same numbers.
    small = evaluate_part(y[:500], {"m": s[:500]}, options=options, ids=row_ids[:500], keep=True)
    resampler = Resampler(y[:500], resample="poisson", ids=row_ids[:500])
    counts = resampler.poisson_block(poisson_seed(5), range(30))
    one = [se.roc_auc(y[:500], s[:500], sample_weight=c) for c in counts]
    assert small.metrics["auc", "m"].distribution == pytest.approx(one, abs=1e-12)


@pytest.mark.parametrize(("n", "shift", "seed"), [(300, 0.5, 0), (600, 1.5, 1), (1000, 3.0, 2)])
def test_poisson_intervals_agree_with_efron_within_monte_carlo_error(n, shift, seed):
    # Both bootstraps estimate the same sampling distribution (the Poisson one lets the size
    # vary, an O(1/n) difference). With B = 2000 resamples a 2.5% percentile has a Monte Carlo
    # standard error of sqrt(.025 * .975 / B) / phi(1.96) = 0.06 sigma (sigma: the bootstrap
    # SE), the difference of two such ends 0.085 sigma: tolerance 0.35 sigma (4 standard
    # errors). The SEs themselves differ by about sigma / sqrt(B) = 0.022 sigma: tolerance 0.1.
    y, s = binormal(n, shift, seed)
    efron = se.bootstrap_auc(y, s, n_boot=2000, seed=seed)
    poisson = se.bootstrap_auc(y, s, n_boot=2000, seed=seed, resample="poisson")
    sigma = efron.se
    assert poisson.estimate == efron.estimate  # AUC's sums are exact in both
    assert abs(poisson.ci_low - efron.ci_low) < 0.35 * sigma
    assert abs(poisson.ci_high - efron.ci_high) < 0.35 * sigma
    assert abs(poisson.se - sigma) < 0.1 * sigma


def test_evaluate_with_poisson_ignores_row_order_and_keeps_the_segments_consistent():
    preds = make_predictions(scale=0.1)
    kwargs = {"segment_by": "source", "n_boot": 40, "seed": 3, "resample": "poisson"}
    ev = se.evaluate(preds, baseline="single_segment", **kwargs)
    shuffled = preds.sample(frac=1, random_state=0)
    again = se.evaluate(shuffled, baseline="single_segment", **kwargs)
    pd.testing.assert_frame_equal(ev.metrics, again.metrics)
    pd.testing.assert_frame_equal(ev.comparisons, again.comparisons)
    assert ev.settings["resample"] == "poisson"
    # One segment alone: the same counts for its images, so the same interval.
    seg = preds[preds.source == "S2"]
    alone = se.evaluate(seg, **{**kwargs, "segment_by": None})
    row = ev.metrics.query("segment == 'S2' and model == 'periodic'").iloc[0]
    mine = alone.metrics.query("model == 'periodic'").iloc[0]
    columns = ["auc", "auc_ci_low", "auc_ci_high"]
    assert row[columns].tolist() == mine[columns].tolist()


def test_poisson_wll_differs_from_the_plain_wll_by_less_than_the_rounding():
    y, s = binormal(2000, 1.0, 3)
    plain = se.bootstrap_wll(y, s, n_boot=5, seed=0)
    exact = se.bootstrap_wll(y, s, n_boot=5, seed=0, resample="poisson")
    assert abs(exact.estimate - plain.estimate) < 3e-8


def test_poisson_with_a_cluster_column_weights_patients():
    preds = make_predictions(scale=0.1)
    preds["patient_id"] = preds["image_id"].str[:-1]
    ev = se.evaluate(
        preds, segment_by=None, cluster="patient_id", resample="poisson", n_boot=20, seed=0
    )
    assert ev.settings["resample"] == "poisson"
    assert ev.metrics.auc_ci_low.notna().all()


def test_bootstrap_indices_replay_poisson_counts():
    y = np.array([0, 1] * 50, dtype=np.int8)
    idx = list(se.bootstrap_indices(y, n_boot=3, seed=0, resample="poisson"))
    counts = Resampler(y, resample="poisson").poisson_block(poisson_seed(0), range(3))
    for b in range(3):
        assert np.array_equal(np.bincount(idx[b], minlength=y.size), counts[b])
