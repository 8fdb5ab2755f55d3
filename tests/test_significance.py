"""Altman-Bland p-values worked by hand, the paper's verdict, and Holm's correction."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import segeval as se


def test_altman_bland_worked_by_hand():
    # Δ = 0.05, 95% CI (0.01, 0.09): SE = 0.08 / 3.92 = 0.0204082, z = 0.05 / SE = 2.45,
    # p = exp(-0.717 * 2.45 - 0.416 * 2.45^2) = exp(-1.75665 - 2.49704) = exp(-4.25369) = 0.0142117
    assert se.p_value_from_ci(0.05, 0.01, 0.09) == pytest.approx(0.0142117, abs=5e-7)
    # Negative Δ: symmetric. Δ = -0.02, CI (-0.06, 0.02): SE = 0.04 / 3.92, z = 0.98,
    # p = exp(-0.70266 - 0.399526) = exp(-1.102186) = 0.332144
    assert se.p_value_from_ci(-0.02, -0.06, 0.02) == pytest.approx(0.332144, abs=5e-7)
    # Estimate -1.1, 95% CI (-2.0, -0.2): SE = 1.8 / 3.92 = 0.459184, z = 2.395556,
    # p = exp(-1.717613 - 2.387294) = exp(-4.104907) = 0.016492
    assert se.p_value_from_ci(-1.1, -2.0, -0.2) == pytest.approx(0.016492, abs=5e-7)


def test_altman_bland_other_levels_and_edges():
    # 90% interval: SE = width / (2 * 1.6449)
    z = 0.05 / (0.08 / (2 * 1.6448536269514722))
    assert se.p_value_from_ci(0.05, 0.01, 0.09, level=0.9) == pytest.approx(
        math.exp(-0.717 * z - 0.416 * z * z)
    )
    assert se.p_value_from_ci(0.0, 0.0, 0.0) == 1.0
    assert se.p_value_from_ci(0.1, 0.1, 0.1) == 0.0
    assert math.isnan(se.p_value_from_ci(float("nan"), 0, 1))
    with pytest.raises(ValueError, match=r"low <= high; got low=0.2, high=0.1"):
        se.p_value_from_ci(0.1, 0.2, 0.1)
    with pytest.raises(ValueError, match="level must be a confidence level"):
        se.p_value_from_ci(0.1, 0.0, 0.2, level=1.5)


@pytest.mark.parametrize(
    ("low", "high", "p", "expected"),
    [
        (-0.05, -0.01, 0.01, "significant decrease"),
        (-0.05, -0.01, 0.06, "not significant"),
        (0.0, 0.04, 0.04, "significant increase"),  # a CI lower bound of exactly 0 counts
        (-0.001, 0.04, 0.04, "not significant"),
        (-0.02, 0.0, 0.01, "not significant"),  # upper bound 0 is not < 0
        (float("nan"), 0.1, 0.01, "undefined"),
    ],
)
def test_verdict_follows_the_paper(low, high, p, expected):
    assert se.verdict(low, high, p) == expected


def holm_reference(p):
    """Holm by definition, with an explicit loop over the sorted p-values."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_holm_against_reference():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 20):
        for _ in range(20):
            p = rng.random(m) ** 3
            np.testing.assert_allclose(se.holm(p), holm_reference(list(p)), rtol=1e-15)
    # Hand-worked: [0.01, 0.04, 0.03] -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    np.testing.assert_allclose(se.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_holm_controls_and_keeps_nan():
    adj = se.holm([0.2, np.nan, 0.01])
    assert np.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2]], [0.2, 0.02])  # family of 2, not 3
    for p in itertools.product([0.001, 0.02, 0.5, 1.0], repeat=3):
        adj = se.holm(p)
        assert np.all(adj >= np.array(p)) and np.all(adj <= 1)
    assert se.holm([]).size == 0
    with pytest.raises(ValueError, match=r"p_values must lie in \[0, 1\]"):
        se.holm([0.5, 1.2])


def test_the_symmetric_verdict_treats_a_bound_at_zero_alike_on_both_sides():
    from segeval.significance import verdict

    assert verdict(0.0, 0.1, 0.01) == "significant increase"  # the paper's rule, the default
    assert verdict(-0.1, 0.0, 0.01) == "not significant"
    assert verdict(0.0, 0.1, 0.01, rule="symmetric") == "not significant"
    assert verdict(-0.1, 0.0, 0.01, rule="symmetric") == "not significant"
    assert verdict(0.01, 0.1, 0.01, rule="symmetric") == "significant increase"
    assert verdict(-0.1, -0.01, 0.01, rule="symmetric") == "significant decrease"
    with pytest.raises(se.InputError, match="rule must be one of paper, symmetric; got 'both'"):
        verdict(0.0, 0.1, 0.01, rule="both")


def test_evaluate_reads_verdicts_by_the_rule_asked_for():
    import warnings

    import segeval as se
    from segeval.synthetic import make_predictions

    p = make_predictions(scale=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paper = se.evaluate(p, segment_by="source", baseline="single_segment", n_boot=30)
        sym = se.evaluate(
            p, segment_by="source", baseline="single_segment", n_boot=30, verdict_rule="symmetric"
        )
    assert sym.settings["verdict_rule"] == "symmetric"
    rows = sym.comparisons.assign(expected=[
        "significant increase" if lo > 0 and q < 0.05 else
        "significant decrease" if hi < 0 and q < 0.05 else "not significant"
        for lo, hi, q in zip(sym.comparisons.delta_ci_low, sym.comparisons.delta_ci_high,
                             sym.comparisons.p_holm, strict=True)
    ])  # fmt: skip
    assert (rows.verdict_holm == rows.expected).all()
    assert paper.comparisons.delta_auc.tolist() == sym.comparisons.delta_auc.tolist()
    with pytest.raises(se.InputError, match="verdict_rule must be one of paper, symmetric"):
        se.evaluate(p, segment_by=None, n_boot=5, verdict_rule="loose")
