"""Point metrics against brute-force references and scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

import segeval as se
from tests.conftest import random_problem

# Sums of up to 20,000 float64 terms in a different order than sklearn's: agreement to 1e-10.
TOL = 1e-10


def brute_force_auc(y, s, w=None):
    """Pairwise Mann-Whitney: P(score_pos > score_neg) + P(equal) / 2, O(n_pos n_neg)."""
    y, s = np.asarray(y), np.asarray(s, float)
    w = np.ones(len(y)) if w is None else np.asarray(w, float)
    sp, sn, wp, wn = s[y == 1], s[y == 0], w[y == 1], w[y == 0]
    cmp = (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])
    return float(wp @ cmp @ wn / (wp.sum() * wn.sum()))


CASES = [
    (n, prev, ties) for n in (2, 3, 7, 50, 400) for prev in (0.1, 0.5) for ties in (False, True)
]


@pytest.mark.parametrize(("n", "prevalence", "ties"), CASES)
def test_roc_auc_matches_brute_force_and_sklearn(n, prevalence, ties):
    rng = np.random.default_rng(n * 7 + int(ties))
    for _ in range(20):
        y, s = random_problem(rng, n, prevalence=prevalence, ties=ties)
        w = rng.integers(0, 4, n).astype(float)
        w[0] = w[-1] = 1.0
        assert se.roc_auc(y, s) == pytest.approx(brute_force_auc(y, s), abs=TOL)
        assert se.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=TOL)
        assert se.roc_auc(y, s, sample_weight=w) == pytest.approx(
            skm.roc_auc_score(y, s, sample_weight=w), abs=TOL
        )
        assert se.roc_auc(y, s, sample_weight=w) == pytest.approx(brute_force_auc(y, s, w), abs=TOL)


def test_roc_auc_extreme_imbalance():
    rng = np.random.default_rng(0)
    y = np.zeros(20_000, int)
    y[rng.choice(20_000, 5, replace=False)] = 1
    s = np.round(rng.random(20_000), 3)  # many ties
    assert se.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=TOL)
    assert se.roc_auc(y, s) == pytest.approx(brute_force_auc(y, s), abs=TOL)
    p = np.clip(s, 1e-6, 1 - 1e-6)
    assert se.weighted_log_loss(y, p) == pytest.approx(wll_reference(y, p), rel=TOL)


def test_sample_weight_properties():
    """None == ones; an integer weight == the row repeated; a zero weight == the row dropped."""
    rng = np.random.default_rng(1)
    y, s = random_problem(rng, 60, ties=True)
    w = rng.integers(0, 4, 60)
    w[0] = w[-1] = 1
    rep = np.repeat(np.arange(60), w)
    for f in (se.roc_auc, se.weighted_log_loss):
        assert f(y, s, sample_weight=np.ones(60)) == f(y, s)
        assert f(y, s, sample_weight=w) == pytest.approx(f(y[rep], s[rep]), abs=TOL)
        keep = w > 0
        w01 = keep.astype(float)
        assert f(y, s, sample_weight=w01) == pytest.approx(f(y[keep], s[keep]), abs=TOL)


def wll_reference(y, p, eps=1e-15):
    """WLL by its definition: half the mean loss of positives plus half that of negatives."""
    p = np.clip(np.asarray(p, float), eps, 1 - eps)
    y = np.asarray(y)
    return 0.5 * np.mean(-np.log(p[y == 1])) + 0.5 * np.mean(-np.log(1 - p[y == 0]))


@pytest.mark.parametrize(("n", "prevalence", "ties"), CASES)
def test_weighted_log_loss_matches_definition_and_sklearn(n, prevalence, ties):
    rng = np.random.default_rng(n + 1000 * int(ties))
    for _ in range(20):
        y, s = random_problem(rng, n, prevalence=prevalence, ties=ties)
        s = np.clip(s, 1e-6, 1 - 1e-6)
        n_pos, n_neg = y.sum(), (1 - y).sum()
        class_w = np.where(y == 1, 1 / (2 * n_pos), 1 / (2 * n_neg))
        assert se.weighted_log_loss(y, s) == pytest.approx(wll_reference(y, s), rel=TOL)
        assert se.weighted_log_loss(y, s) == pytest.approx(
            skm.log_loss(y, s, sample_weight=class_w), rel=TOL
        )
        w = rng.random(n) + 0.1
        wp, wn = w[y == 1].sum(), w[y == 0].sum()
        sk_w = w * np.where(y == 1, 1 / (2 * wp), 1 / (2 * wn))
        assert se.weighted_log_loss(y, s, sample_weight=w) == pytest.approx(
            skm.log_loss(y, s, sample_weight=sk_w), rel=TOL
        )


def test_weighted_log_loss_is_prevalence_free_and_clipped():
    # Constant 0.5 predictions cost log 2 whatever the prevalence.
    assert se.weighted_log_loss([0] * 99 + [1], [0.5] * 100) == pytest.approx(np.log(2))
    # A confident mistake is clipped at eps instead of being infinite.
    assert se.weighted_log_loss([0, 1], [1.0, 1.0], eps=1e-7) == pytest.approx(
        0.5 * -np.log(1e-7) + 0.5 * -np.log(1 - 1e-7)
    )


@pytest.mark.parametrize(("n", "prevalence", "ties"), CASES)
def test_roc_curve_matches_sklearn(n, prevalence, ties):
    rng = np.random.default_rng(n + 77)
    y, s = random_problem(rng, n, prevalence=prevalence, ties=ties)
    w = rng.random(n) + 0.5
    ours = se.roc_curve(y, s, sample_weight=w)
    fpr, tpr, thr = skm.roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    np.testing.assert_allclose(ours.fpr, fpr, atol=TOL)
    np.testing.assert_allclose(ours.tpr, tpr, atol=TOL)
    np.testing.assert_array_equal(ours.thresholds[1:], thr[1:])
    assert np.trapezoid(ours.tpr, ours.fpr) == pytest.approx(se.roc_auc(y, s, sample_weight=w))


def test_operating_points_by_brute_force():
    rng = np.random.default_rng(3)
    for ties in (False, True):
        y, s = random_problem(rng, 300, ties=ties)
        s[:5] = 0.4  # scores exactly at a threshold count as positive
        op = se.operating_points(y, s)
        for t, fpr, tpr in zip(op.thresholds, op.fpr, op.tpr, strict=True):
            pred = s >= t
            assert tpr == pred[y == 1].mean()
            assert fpr == pred[y == 0].mean()
        assert list(op.to_frame().columns) == ["threshold", "fpr", "tpr"]
        assert op.thresholds.tolist() == [0.2, 0.4, 0.6, 0.8]


def test_one_class_warns_and_returns_nan():
    for f in (se.roc_auc, se.weighted_log_loss):
        with pytest.warns(se.UndefinedMetricWarning, match="Only negatives"):
            assert np.isnan(f([0, 0, 0], [0.1, 0.2, 0.3]))
        with pytest.warns(se.UndefinedMetricWarning, match="Only positives"):
            assert np.isnan(f([1], [0.3]))
    with pytest.warns(se.UndefinedMetricWarning, match="total sample weight is zero"):
        assert np.isnan(se.roc_auc([0, 1], [0.1, 0.2], sample_weight=[0, 0]))
    with pytest.warns(se.UndefinedMetricWarning, match="TPR is not defined"):
        op = se.operating_points([0, 0], [0.1, 0.9])
    assert np.isnan(op.tpr).all()
    assert op.fpr.tolist() == [0.5, 0.5, 0.5, 0.5]
    with pytest.warns(se.UndefinedMetricWarning, match="FPR is not defined"):
        curve = se.roc_curve([1, 1], [0.1, 0.9])
    assert np.isnan(curve.fpr).all()


def test_defined_metrics_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        se.roc_auc([0, 1], [0.2, 0.2])
        se.weighted_log_loss([0, 1], [0.0, 1.0])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: se.roc_auc([0, 1, 1], [0.1, 0.2]), "y_true has 3, y_score has 2"),
        (lambda: se.roc_auc([0, 1], [0.1, np.nan]), r"y_score must be finite; got nan"),
        (lambda: se.roc_auc([0, 1], [0.1, np.inf]), r"y_score must be finite; got inf"),
        (lambda: se.weighted_log_loss([0, 1], [0.1, 1.5]), r"probabilities in \[0, 1\]; got 1.5"),
        (lambda: se.weighted_log_loss([0, 1], [-0.1, 0.5]), r"got -0.1"),
        (lambda: se.roc_auc([0, 2], [0.1, 0.2]), "y_true must contain only 0 and 1; got 2"),
        (
            lambda: se.roc_auc(["a", "b"], [0.1, 0.2]),
            "y_true must contain only 0 and 1; got 'a', 'b'",
        ),
        (lambda: se.roc_auc([0, 0.5], [0.1, 0.2]), "only 0 and 1; got 0.5"),
        (lambda: se.roc_auc([], []), "y_true is empty"),
        (lambda: se.roc_auc([[0, 1]], [[0.1, 0.2]]), "y_true must be one-dimensional"),
        (lambda: se.roc_auc([0, 1], ["x", "y"]), "y_score must be numeric"),
        (lambda: se.roc_auc([0, 1], [0.1, 0.2], sample_weight=[1, -1]), "non-negative"),
        (lambda: se.roc_auc([0, 1], [0.1, 0.2], sample_weight=[1]), "sample_weight has 1"),
        (lambda: se.weighted_log_loss([0, 1], [0.1, 0.2], eps=0), "eps must be in"),
        (lambda: se.operating_points([0, 1], [0.1, 0.2], []), "thresholds must be a non-empty"),
        (
            lambda: se.operating_points([0, 1], [0.1, 0.2], [0.5, 0.5]),
            "thresholds must be distinct",
        ),
    ],
)
def test_bad_input_names_argument_and_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()
