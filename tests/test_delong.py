"""DeLong's fast algorithm against the O(n_pos n_neg) structural components."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

import segeval as se
from tests.conftest import random_problem

TOL = 1e-9  # the bound; both sides are exact up to float rounding


def brute_force_delong(y, scores):
    """DeLong 1988 from the kernel psi(x, z) = 1 if x > z, 1/2 if equal, computed pairwise."""
    y = np.asarray(y)
    v10, v01 = [], []
    for s in scores:
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    v10, v01 = np.array(v10), np.array(v01)
    m, n = v10.shape[1], v01.shape[1]
    k = len(scores)
    s10 = np.array(
        [
            [
                np.sum((v10[i] - v10[i].mean()) * (v10[j] - v10[j].mean())) / (m - 1)
                for j in range(k)
            ]
            for i in range(k)
        ]
    )
    s01 = np.array(
        [
            [
                np.sum((v01[i] - v01[i].mean()) * (v01[j] - v01[j].mean())) / (n - 1)
                for j in range(k)
            ]
            for i in range(k)
        ]
    )
    return v10.mean(axis=1), s10 / m + s01 / n


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n", [5, 30, 300])
def test_delong_matches_brute_force(n, ties):
    rng = np.random.default_rng(n + int(ties))
    for _ in range(15):
        y, a = random_problem(rng, n, ties=ties)
        y[1], y[-2] = 1, 0  # at least two of each class for a sample covariance
        b = np.clip(a + rng.normal(0, 0.2, n), 0, 1)
        if ties:
            b = np.round(b, 1)
        aucs, cov = brute_force_delong(y, [a, b])
        single = se.delong_auc_ci(y, a)
        assert single.auc == pytest.approx(aucs[0], abs=TOL)
        assert single.auc == pytest.approx(roc_auc_score(y, a), abs=TOL)
        assert single.se == pytest.approx(np.sqrt(cov[0, 0]), abs=TOL)
        test = se.delong_delta_auc_test(y, a, b)
        var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
        assert test.delta == pytest.approx(aucs[1] - aucs[0], abs=TOL)
        assert test.se == pytest.approx(np.sqrt(var), abs=TOL)
        if var > 1e-12:
            z = (aucs[1] - aucs[0]) / np.sqrt(var)
            assert test.z == pytest.approx(z, abs=1e-6)
            assert test.p_value == pytest.approx(2 * norm.sf(abs(z)), abs=1e-9)


def test_delong_ci_is_normal_interval_clipped_to_unit():
    y = [0, 0, 0, 1, 1, 1]
    r = se.delong_auc_ci(y, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert r.auc == 1.0 and r.se == 0.0 and (r.ci_low, r.ci_high) == (1.0, 1.0)
    r = se.delong_auc_ci([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.7, 0.6, 0.65, 0.9], ci=0.9)
    half = norm.ppf(0.95) * r.se
    assert (r.ci_low, r.ci_high) == pytest.approx((r.auc - half, min(1.0, r.auc + half)))


def test_identical_models_p_is_one():
    y, s = random_problem(np.random.default_rng(0), 50)
    r = se.delong_delta_auc_test(y, s, s)
    assert r.delta == 0 and r.se == 0 and r.p_value == 1.0 and np.isnan(r.z)


def test_delong_one_class_and_bad_input():
    with pytest.warns(se.UndefinedMetricWarning, match="Only negatives"):
        assert np.isnan(se.delong_auc_ci([0, 0], [0.1, 0.2]).auc)
    with pytest.warns(se.UndefinedMetricWarning, match="DeLong"):
        assert np.isnan(se.delong_delta_auc_test([1, 1], [0.1, 0.2], [0.3, 0.4]).p_value)
    with pytest.raises(ValueError, match="y_true has 2, score_a has 2, score_b has 3"):
        se.delong_delta_auc_test([0, 1], [0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="ci must be a confidence level"):
        se.delong_auc_ci([0, 1], [0.1, 0.2], ci=95)
