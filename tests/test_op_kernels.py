"""Operating-point and calibration kernels against brute force and independent solvers.

Every kernel is checked on many random problems (ties, tiny sets, one class, bootstrap counts,
zero weights) against (a) a reference written differently, (b) its own row-wise form, (c) the
sample-weight properties, then its undefined cases, messages and point functions.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq, minimize
from scipy.special import expit
from sklearn.metrics import precision_score, roc_curve

from segeval import _op_kernels as ok
from segeval import op_metrics as om
from segeval.validation import InputError, UndefinedMetricWarning

# Exact kernels (counts and ratios) must match their references to rounding error.
EXACT = 1e-12
# Calibration fits are iterative: they agree to rounding error relative to 1 + |value| (the
# intercept reaches -18 on tiny sets with scores clipped at 1 - 1e-15). The references get there
# too because brentq runs to rtol = 4 ulp on a score equation written to keep its digits, and
# trust-exact (which stops near 1e-8) is polished by plain Newton steps.
SOLVER = 1e-12

SEEDS = range(240)
LEVELS = (0.5, 0.75, 0.8, 0.9, 0.95)


def make_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and weights of one random problem; the mix is set by the seed."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7)) if seed % 3 == 0 else int(rng.integers(7, 60))
    y = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(np.int8)
    if seed % 11 == 0:
        y[:] = seed % 2  # one class
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0, 1)
    if seed % 2 == 0:
        s = np.round(s, 1)  # heavy ties, and exact 0 and 1 (clipped by the calibration fits)
    kind = seed % 4
    if kind == 0:
        w = np.ones(n)
    elif kind == 1:  # a replayed bootstrap resample
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
    elif kind == 2:  # real weights with some exact zeros
        w = rng.uniform(0.1, 3.0, n) * (rng.random(n) < 0.8)
    else:  # integer weights with zeros
        w = rng.integers(0, 4, n).astype(np.float64)
    return y, s, w


def level_for(seed: int) -> float:
    rng = np.random.default_rng(10_000 + seed)
    return LEVELS[seed % len(LEVELS)] if seed % 3 else float(rng.uniform(0.01, 0.99))


def threshold_for(seed: int, s: np.ndarray) -> float:
    rng = np.random.default_rng(20_000 + seed)
    # A score of the data (ties with the threshold) or any value, including beyond every score.
    return float(rng.choice(s)) if seed % 2 else float(rng.uniform(-0.1, 1.1))


def class_weights(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    return float(w[y == 1].sum()), float(w[y == 0].sum())


# --------------------------------------------------------------------------- references


def rate_at_rate_loop(y, s, w, level, *, sens_at_spec: bool) -> float:
    """Every candidate threshold in turn, rates as fractions (not the kernel's counts)."""
    w_pos, w_neg = class_weights(y, w)
    if w_pos <= 0 or w_neg <= 0:
        return np.nan
    best = -np.inf
    for t in [*np.unique(s), np.inf]:
        pred = s >= t
        tpr = w[pred & (y == 1)].sum() / w_pos
        tnr = w[~pred & (y == 0)].sum() / w_neg
        constraint, objective = (tnr, tpr) if sens_at_spec else (tpr, tnr)
        if constraint >= level - 1e-12:
            best = max(best, objective)
    return best


def rate_at_rate_sklearn(y, s, w, level, *, sens_at_spec: bool) -> float:
    fpr, tpr, _ = roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    if sens_at_spec:
        return float(tpr[fpr <= 1 - level + 1e-12].max())
    return float((1 - fpr)[tpr >= level - 1e-12].max())


def predictive_value_masks(y, s, w, t, *, positive: bool) -> float:
    selected = s >= t if positive else s < t
    correct = selected & (y == (1 if positive else 0))
    base = w[selected].sum()
    return np.nan if base <= 0 else w[correct].sum() / base


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return np.log(p / (1 - p))


def citl_brentq(y, s, w) -> float:
    w_pos, w_neg = class_weights(y, w)
    if w_pos <= 0 or w_neg <= 0:
        return np.nan
    z = logit(s)
    pos, neg = y == 1, y == 0

    def score(a: float) -> float:
        # y - expit(a + z), written per class so that it keeps its digits where expit is near 1
        # (scores clipped at 1 - 1e-15 give z = 34.5).
        return float(np.sum(w[pos] * expit(-a - z[pos])) - np.sum(w[neg] * expit(a + z[neg])))

    return float(brentq(score, -200, 200, xtol=1e-14, rtol=4 * np.finfo(float).eps))


def separated(y, s, w) -> bool:
    z = logit(s)
    pos, neg = z[(y == 1) & (w > 0)], z[(y == 0) & (w > 0)]
    return pos.min() >= neg.max() or pos.max() <= neg.min()


def slope_trust_exact(y, s, w) -> float:
    """Maximum likelihood by scipy's trust-region method with the exact Hessian."""
    w_pos, w_neg = class_weights(y, w)
    if w_pos <= 0 or w_neg <= 0 or separated(y, s, w):
        return np.nan
    x = np.c_[np.ones(y.size), logit(s)]

    def nll(theta):
        eta = x @ theta
        return np.sum(w * (np.logaddexp(0, eta) - y * eta))

    def grad(theta):
        return x.T @ (w * (expit(x @ theta) - y))

    def hess(theta):
        mu = expit(x @ theta)
        return (x * (w * mu * (1 - mu))[:, None]).T @ x

    fit = minimize(nll, [0.0, 1.0], jac=grad, hess=hess, method="trust-exact")
    theta = fit.x
    # trust-exact stops at its gradient tolerance (about 1e-8 on the slope); plain Newton steps
    # from there, solved by LAPACK, polish it to rounding error.
    for _ in range(3):
        theta = theta - np.linalg.solve(hess(theta), grad(theta))
    return float(theta[1])


KERNELS = {
    "sens@spec": ok.SensitivityAtSpecificity,
    "spec@sens": ok.SpecificityAtSensitivity,
    "ppv": ok.PPVAtThreshold,
    "npv": ok.NPVAtThreshold,
    "citl": ok.CalibrationInTheLarge,
    "slope": ok.CalibrationSlope,
}
TOLERANCE = {"citl": SOLVER, "slope": SOLVER}


def params_for(name: str, seed: int, s: np.ndarray) -> dict[str, float]:
    if name in ("sens@spec", "spec@sens"):
        return {"level": level_for(seed)}
    if name in ("ppv", "npv"):
        return {"threshold": threshold_for(seed, s)}
    return {}


# --------------------------------------------------------------------------- (a) references


@pytest.mark.parametrize("sens_at_spec", [True, False])
def test_rate_at_rate_matches_loop_and_sklearn(sens_at_spec):
    cls = ok.SensitivityAtSpecificity if sens_at_spec else ok.SpecificityAtSensitivity
    checked_sklearn = 0
    for seed in SEEDS:
        y, s, w = make_case(seed)
        level = level_for(seed)
        got = cls(y, s, level=level)(w)
        want = rate_at_rate_loop(y, s, w, level, sens_at_spec=sens_at_spec)
        np.testing.assert_allclose(got, want, rtol=0, atol=EXACT, err_msg=f"seed {seed}")
        if not np.isnan(want):
            sk = rate_at_rate_sklearn(y, s, w, level, sens_at_spec=sens_at_spec)
            np.testing.assert_allclose(got, sk, rtol=0, atol=EXACT, err_msg=f"seed {seed}")
            checked_sklearn += 1
    assert checked_sklearn > 150


def test_rate_constraint_counts_exactly_one_false_positive_in_ten():
    # (1 - 0.9) * 10 rounds below 1 in floating point: without the documented tolerance the
    # threshold with one false positive among ten negatives would wrongly be excluded.
    assert (1 - 0.9) * 10 < 1
    y = np.r_[np.zeros(10), 1, 1].astype(np.int8)
    s = np.r_[np.arange(10) / 10, 0.85, 0.95]  # the top negative scores 0.9
    assert ok.SensitivityAtSpecificity(y, s, level=0.9)(np.ones(12)) == 1.0
    assert ok.SensitivityAtSpecificity(y, s, level=0.91)(np.ones(12)) == 0.5
    # Mirror: ten positives at sensitivity 0.9 may miss exactly one.
    y_m, s_m = 1 - y, 1 - s
    assert ok.SpecificityAtSensitivity(y_m, s_m, level=0.9)(np.ones(12)) == 1.0
    assert ok.SpecificityAtSensitivity(y_m, s_m, level=0.91)(np.ones(12)) == 0.5


def test_rate_at_rate_ties_move_together():
    # Three tied scores: a threshold takes the whole tie group or none of it.
    y = np.array([0, 1, 0, 1, 1], dtype=np.int8)
    s = np.array([0.1, 0.5, 0.5, 0.5, 0.9])
    # Specificity 0.5 allows one false positive: the tie group at 0.5 brings it together with two
    # positives (sensitivity 1). Specificity 0.6 allows none, and the group cannot be split, so
    # only the threshold 0.9 qualifies (sensitivity 1/3).
    assert ok.SensitivityAtSpecificity(y, s, level=0.5)(np.ones(5)) == 1.0
    assert ok.SensitivityAtSpecificity(y, s, level=0.6)(np.ones(5)) == pytest.approx(1 / 3)


@pytest.mark.parametrize("positive", [True, False])
def test_predictive_values_match_masks_and_sklearn(positive):
    cls = ok.PPVAtThreshold if positive else ok.NPVAtThreshold
    checked_sklearn = 0
    for seed in SEEDS:
        y, s, w = make_case(seed)
        t = threshold_for(seed, s)
        got = cls(y, s, threshold=t)(w)
        want = predictive_value_masks(y, s, w, t, positive=positive)
        np.testing.assert_allclose(got, want, rtol=0, atol=EXACT, err_msg=f"seed {seed}")
        if positive and not np.isnan(want):
            sk = precision_score(y, (s >= t).astype(int), sample_weight=w, zero_division=0)
            np.testing.assert_allclose(got, sk, rtol=0, atol=EXACT, err_msg=f"seed {seed}")
            checked_sklearn += 1
    assert checked_sklearn > 100 or not positive


def test_calibration_in_the_large_matches_brentq():
    defined = 0
    for seed in SEEDS:
        y, s, w = make_case(seed)
        got = ok.CalibrationInTheLarge(y, s)(w)
        want = citl_brentq(y, s, w)
        tol = SOLVER * (1 + abs(want)) if np.isfinite(want) else 0
        np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=f"seed {seed}")
        defined += not np.isnan(want)
    assert defined > 150


def test_calibration_slope_matches_trust_region():
    defined = 0
    for seed in SEEDS:
        y, s, w = make_case(seed)
        got = ok.CalibrationSlope(y, s)(w)
        want = slope_trust_exact(y, s, w)
        tol = SOLVER * (1 + abs(want)) if np.isfinite(want) else 0
        np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=f"seed {seed}")
        defined += not np.isnan(want)
    assert defined > 100


def test_calibration_of_recalibrated_scores_is_ideal():
    # Scores that are the true probabilities of a logistic model: the fit on a huge weighted
    # "population" (weights = probabilities) recovers CITL 0 and slope 1 exactly.
    p = np.linspace(0.02, 0.98, 49)
    y = np.r_[np.ones(49), np.zeros(49)].astype(np.int8)
    s = np.r_[p, p]
    w = np.r_[p, 1 - p]
    assert ok.CalibrationInTheLarge(y, s)(w) == pytest.approx(0, abs=1e-12)
    assert ok.CalibrationSlope(y, s)(w) == pytest.approx(1, abs=1e-12)
    # Over-confident scores (logits doubled) give slope 1/2.
    z2 = 2 * np.log(p / (1 - p))
    assert ok.CalibrationSlope(y, np.r_[expit(z2), expit(z2)])(w) == pytest.approx(0.5, abs=1e-12)


# --------------------------------------------------------------------------- (b) batch


@pytest.mark.parametrize("name", list(KERNELS))
def test_batch_equals_row_by_row(name):
    for seed in range(0, 240, 4):
        y, s, _ = make_case(seed)
        kernel = KERNELS[name](y, s, **params_for(name, seed, s))
        rng = np.random.default_rng(seed)
        n = y.size
        rows = [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(6)]
        rows += [np.ones(n), np.zeros(n), rng.uniform(0, 2, n) * (rng.random(n) < 0.7)]
        w = np.array(rows, dtype=np.float64)
        got = kernel.batch(w, w.sum(axis=1))
        want = np.array([kernel(row, float(row.sum())) for row in w])
        assert got.shape == (w.shape[0],)
        np.testing.assert_allclose(got, want, rtol=0, atol=EXACT, err_msg=f"seed {seed}")
        # A row's value does not depend on the rows batched with it.
        np.testing.assert_allclose(kernel.batch(w[::-1], w.sum(axis=1)[::-1]), want[::-1], atol=0)


# --------------------------------------------------------------------------- (c) weights


@pytest.mark.parametrize("name", list(KERNELS))
def test_integer_weight_is_repeated_rows_and_zero_weight_is_dropped_row(name):
    tol = TOLERANCE.get(name, EXACT)
    for seed in range(0, 240, 3):
        y, s, _ = make_case(seed)
        rng = np.random.default_rng(seed)
        counts = rng.integers(0, 4, y.size)
        if counts.sum() == 0:
            continue
        params = params_for(name, seed, s)
        kernel = KERNELS[name](y, s, **params)
        weighted = kernel(counts.astype(np.float64))
        repeated = KERNELS[name](np.repeat(y, counts), np.repeat(s, counts), **params)
        expanded = repeated(np.ones(int(counts.sum())))
        scale = 1 + abs(expanded) if np.isfinite(expanded) else 1
        np.testing.assert_allclose(
            weighted, expanded, rtol=0, atol=tol * scale, err_msg=f"seed {seed}"
        )
        assert (kernel.reason(counts) is None) == (repeated.reason() is None)
        np.testing.assert_equal(kernel(np.ones(y.size)), kernel(np.ones(y.size), float(y.size)))


@pytest.mark.parametrize("name", list(KERNELS))
def test_none_is_all_ones_and_reason_matches_nan(name):
    for seed in SEEDS:
        y, s, w = make_case(seed)
        kernel = KERNELS[name](y, s, **params_for(name, seed, s))
        assert kernel.reason() == kernel.reason(np.ones(y.size))
        value = kernel(w)
        reason = kernel.reason(w)
        assert np.isnan(value) == (reason is not None), f"seed {seed}: {value}, {reason}"
        if reason is not None:
            assert reason.endswith(".") and reason[0].isupper()


# --------------------------------------------------------------------------- (d) undefined


@pytest.mark.parametrize(
    ("kernel", "what"),
    [
        (ok.SensitivityAtSpecificity(np.array([1, 1], np.int8), np.array([0.2, 0.7]), level=0.9),
         "Only positives .* Sensitivity at specificity 0.9 is not defined"),
        (ok.SpecificityAtSensitivity(np.array([0, 0], np.int8), np.array([0.2, 0.7]), level=0.8),
         "Only negatives .* Specificity at sensitivity 0.8 is not defined"),
        (ok.CalibrationInTheLarge(np.array([0, 0], np.int8), np.array([0.2, 0.7])),
         "Only negatives .* Calibration-in-the-large is not defined"),
        (ok.CalibrationSlope(np.array([1], np.int8), np.array([0.2])),
         "Only positives .* Calibration slope is not defined"),
        (ok.PPVAtThreshold(np.array([0, 1], np.int8), np.array([0.2, 0.7]), threshold=0.8),
         r"PPV at threshold 0.8 is undefined: no image scores at or above 0.8\."),
        (ok.NPVAtThreshold(np.array([0, 1], np.int8), np.array([0.2, 0.7]), threshold=0.1),
         r"NPV at threshold 0.1 is undefined: no image scores below 0.1\."),
        (ok.CalibrationSlope(np.array([0, 0, 1, 1], np.int8), np.array([0.1, 0.4, 0.4, 0.9])),
         "Calibration slope is undefined: the scores separate the classes"),
        (ok.CalibrationSlope(np.array([0, 1, 1, 0], np.int8), np.array([0.1, 0.4, 0.6, 0.9])),
         None),
        (ok.CalibrationSlope(np.array([0, 1], np.int8), np.array([0.0, 1e-17])),
         r"every image has the same score \(after clipping"),
    ],
)  # fmt: skip
def test_undefined_gives_nan_and_a_reason(kernel, what):
    w = np.ones(kernel.n)
    if what is None:
        assert np.isfinite(kernel(w))
        assert kernel.reason() is None
    else:
        assert np.isnan(kernel(w))
        assert kernel.reason() is not None
        assert kernel.reason() == kernel.reason(w)
        assert re.search(what, kernel.reason()), kernel.reason()


def test_zero_weights_make_statistics_undefined():
    y = np.array([0, 1, 0, 1], np.int8)
    s = np.array([0.1, 0.3, 0.6, 0.9])
    w = np.array([1.0, 1.0, 0.0, 0.0])  # nothing of weight at or above 0.5
    kernel = ok.PPVAtThreshold(y, s, threshold=0.5)
    assert np.isnan(kernel(w))
    assert "every image scoring at or above 0.5 has zero weight" in kernel.reason(w)
    assert "The total sample weight is zero" in ok.CalibrationSlope(y, s).reason(np.zeros(4))
    # The positive of weight scores below the negative of weight: separated for those weights.
    assert "separate the classes" in ok.CalibrationSlope(y, s).reason(w[::-1])


def test_slope_that_does_not_converge_says_so(monkeypatch):
    y, s, w = make_case(5)
    assert np.isfinite(ok.CalibrationSlope(y, s)(w))
    monkeypatch.setattr(ok, "MAX_ITER", 1)
    kernel = ok.CalibrationSlope(y, s)
    assert np.isnan(kernel(w))
    assert "did not converge in 1 Newton iterations" in kernel.reason(w)


# --------------------------------------------------------------------------- (e) parameters


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, np.nan, True, "0.9", None])
@pytest.mark.parametrize("cls", [ok.SensitivityAtSpecificity, ok.SpecificityAtSensitivity])
def test_bad_level_raises(cls, level):
    with pytest.raises(InputError, match=r"level must be a rate strictly between 0 and 1; got"):
        cls(np.array([0, 1], np.int8), np.array([0.1, 0.9]), level=level)


@pytest.mark.parametrize("threshold", [np.nan, np.inf, "0.5", None, False])
@pytest.mark.parametrize("cls", [ok.PPVAtThreshold, ok.NPVAtThreshold])
def test_bad_threshold_raises(cls, threshold):
    with pytest.raises(InputError, match=r"threshold must be a finite number; got"):
        cls(np.array([0, 1], np.int8), np.array([0.1, 0.9]), threshold=threshold)


@pytest.mark.parametrize("eps", [0, 0.5, -1e-3, np.nan, "1e-15"])
@pytest.mark.parametrize("cls", [ok.CalibrationSlope, ok.CalibrationInTheLarge])
def test_bad_eps_raises(cls, eps):
    with pytest.raises(InputError, match=r"eps must be in \(0, 0.5\); got"):
        cls(np.array([0, 1], np.int8), np.array([0.1, 0.9]), eps=eps)


# --------------------------------------------------------------------------- point functions

POINT = {
    "sens@spec": (om.sensitivity_at_specificity, {"level": 0.8}, ok.SensitivityAtSpecificity),
    "spec@sens": (om.specificity_at_sensitivity, {"level": 0.8}, ok.SpecificityAtSensitivity),
    "ppv": (om.ppv, {"threshold": 0.5}, ok.PPVAtThreshold),
    "npv": (om.npv, {"threshold": 0.5}, ok.NPVAtThreshold),
    "citl": (om.calibration_in_the_large, {}, ok.CalibrationInTheLarge),
    "slope": (om.calibration_slope, {}, ok.CalibrationSlope),
}


@pytest.mark.parametrize("name", list(POINT))
def test_point_function_equals_kernel_and_takes_weights(name):
    func, params, cls = POINT[name]
    y, s, w = make_case(7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = func(y.tolist(), s.tolist(), sample_weight=w, **params)
        assert value == cls(y, s, **params)(w)
        assert func(y, s, **params) == func(y, s, sample_weight=np.ones(y.size), **params)


@pytest.mark.parametrize(
    ("name", "y", "s", "match"),
    [
        ("sens@spec", [1, 1], [0.2, 0.4], "Only positives"),
        ("spec@sens", [0, 0], [0.2, 0.4], "Only negatives"),
        ("ppv", [0, 1], [0.2, 0.4], "no image scores at or above 0.5"),
        ("npv", [0, 1], [0.6, 0.7], "no image scores below 0.5"),
        ("citl", [1, 1], [0.2, 0.4], "Only positives"),
        ("slope", [0, 1], [0.2, 0.4], "separate the classes"),
    ],
)
def test_point_function_warns_when_undefined(name, y, s, match):
    func, params, _ = POINT[name]
    with pytest.warns(UndefinedMetricWarning, match=match):
        assert np.isnan(func(y, s, **params))


@pytest.mark.parametrize("name", list(POINT))
def test_point_function_validates_inputs(name):
    func, params, _ = POINT[name]
    with pytest.raises(InputError, match=r"y_true must contain only 0 and 1; got 2"):
        func([0, 2], [0.1, 0.2], **params)
    with pytest.raises(InputError, match=r"Inputs must have the same length"):
        func([0, 1], [0.1, 0.2, 0.3], **params)
    with pytest.raises(InputError, match=r"sample_weight must be finite and non-negative"):
        func([0, 1], [0.1, 0.2], sample_weight=[1, -1], **params)


@pytest.mark.parametrize("func", [om.calibration_slope, om.calibration_in_the_large])
def test_calibration_needs_probabilities(func):
    with pytest.raises(InputError, match=r"y_score must be probabilities in \[0, 1\]"):
        func([0, 1], [0.1, 1.2])
