"""Operating-point synchronization: per-segment OPs, spread, bootstrap CI."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import segeval as se
from tests.conftest import random_problem


def test_points_and_spread_by_brute_force():
    rng = np.random.default_rng(0)
    y, s = random_problem(rng, 400, ties=True)
    seg = rng.choice(["A", "B", "C", "D"], 400)
    r = se.op_synchronization(y, s, seg, n_boot=50)
    for t in (0.2, 0.4, 0.6, 0.8):
        ops = {}
        for name in "ABCD":
            m = seg == name
            op = se.operating_points(y[m], s[m], [t])
            ops[name] = (op.fpr[0], op.tpr[0])
            row = r.points[(r.points.segment == name) & (r.points.threshold == t)].iloc[0]
            assert (row.fpr, row.tpr) == pytest.approx(ops[name], abs=1e-15)
            assert row.n_pos == y[m].sum()
        diameter = max(
            np.hypot(a[0] - b[0], a[1] - b[1]) for a, b in itertools.combinations(ops.values(), 2)
        )
        spread = r.spread.set_index("threshold").loc[t]
        assert spread.spread == pytest.approx(diameter, abs=1e-15)
        assert spread.ci_low <= spread.spread + 1e-12 and spread.ci_high >= spread.ci_low


def test_bootstrap_spread_equals_slow_reference():
    rng = np.random.default_rng(1)
    y, s = random_problem(rng, 60)
    seg = np.repeat(["A", "B"], 30)
    r = se.op_synchronization(y, s, seg, thresholds=[0.5], n_boot=100, seed=4)
    values = []
    for idx in se.bootstrap_indices(y, n_boot=100, seed=4):
        yb, sb, gb = y[idx], s[idx], seg[idx]
        pts = []
        for name in "AB":
            m = gb == name
            if yb[m].min() == yb[m].max():
                pts = None
                break
            pts.append(((sb[m][yb[m] == 0] >= 0.5).mean(), (sb[m][yb[m] == 1] >= 0.5).mean()))
        values.append(np.nan if pts is None else np.hypot(*np.subtract(*pts)))
    values = np.array(values)
    ok = values[~np.isnan(values)]
    row = r.spread.iloc[0]
    assert row.n_boot_undefined == np.isnan(values).sum()
    assert (row.ci_low, row.ci_high) == pytest.approx(tuple(np.percentile(ok, [2.5, 97.5])))


def test_perfectly_synchronized_segments_have_zero_spread():
    y = np.array([0, 1] * 20)
    s = np.where(y == 1, 0.9, 0.1)
    seg = np.repeat(["A", "B", "C", "D"], 10)
    r = se.op_synchronization(y, s, seg, n_boot=30)
    assert (r.spread.spread == 0).all() and (r.spread.ci_high == 0).all()


def test_one_class_segment_is_excluded_with_warning():
    y = np.array([0, 1] * 10 + [0] * 5)
    s = np.linspace(0, 1, 25)
    seg = ["A"] * 10 + ["B"] * 10 + ["C"] * 5
    with pytest.warns(se.UndefinedMetricWarning, match="left out: C"):
        r = se.op_synchronization(y, s, seg, n_boot=20)
    assert r.excluded == ("C",)
    assert r.points[r.points.segment == "C"].tpr.isna().all()
    assert np.isfinite(r.spread.spread).all()


def test_bad_input():
    with pytest.raises(ValueError, match="thresholds must be distinct"):
        se.op_synchronization([0, 1], [0.1, 0.2], ["a", "a"], thresholds=[0.3, 0.3])
    with pytest.raises(ValueError, match="y_true has 2, segments has 3"):
        se.op_synchronization([0, 1], [0.1, 0.2], ["a", "a", "b"])
    with pytest.raises(ValueError, match="n_boot must be an integer >= 1"):
        se.op_synchronization([0, 1], [0.1, 0.2], ["a", "a"], n_boot=0)
