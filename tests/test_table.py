"""segment_table: global and local rows equal the metrics computed on each subset."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import segeval as se
from tests.conftest import random_problem


def data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y, s = random_problem(rng, n, ties=True)
    seg = rng.choice(["A", "B", "C"], n)
    return y, s, seg


def test_rows_equal_metrics_on_each_subset():
    y, s, seg = data()
    t = se.segment_table(y, s, seg)
    assert t.segment.tolist() == ["__global__", "A", "B", "C"]
    for _, row in t.iterrows():
        mask = np.ones(len(y), bool) if row.segment == se.GLOBAL else seg == row.segment
        assert row.n == mask.sum()
        assert row.n_pos == y[mask].sum() and row.n_neg == (1 - y[mask]).sum()
        assert row.prevalence == pytest.approx(y[mask].mean())
        assert row.auc == pytest.approx(roc_auc_score(y[mask], s[mask]), abs=1e-12)
        assert row.wll == se.weighted_log_loss(y[mask], s[mask])
        assert row.note == ""


def test_bootstrap_columns_equal_bootstrap_on_the_subset():
    y, s, seg = data()
    t = se.segment_table(y, s, seg, n_boot=200, seed=3)
    row = t.set_index("segment").loc["B"]
    ref = se.bootstrap_auc(y[seg == "B"], s[seg == "B"], n_boot=200, seed=3)
    assert (row.auc_ci_low, row.auc_ci_high) == (ref.ci_low, ref.ci_high)
    wref = se.bootstrap_wll(y[seg == "B"], s[seg == "B"], n_boot=200, seed=3)
    assert (row.wll_ci_low, row.wll_ci_high) == (wref.ci_low, wref.ci_high)
    assert row.auc_ci_low <= row.auc <= row.auc_ci_high


def test_cluster_bootstrap_uses_the_segment_clusters():
    y, s, seg = data()
    patients = np.arange(len(y)) // 3
    t = se.segment_table(y, s, seg, n_boot=100, resample="cluster", clusters=patients)
    m = seg == "C"
    ref = se.bootstrap_auc(y[m], s[m], n_boot=100, resample="cluster", clusters=patients[m])
    assert t.set_index("segment").loc["C", "auc_ci_low"] == ref.ci_low


def test_one_class_segment_is_undefined_with_reason():
    y, s, seg = data()
    y = y.copy()
    y[seg == "C"] = 0
    with pytest.warns(se.UndefinedMetricWarning, match="Segment C has no malignant images"):
        t = se.segment_table(y, s, seg, n_boot=20)
    c = t.set_index("segment").loc["C"]
    assert np.isnan(c.auc) and np.isnan(c.wll) and np.isnan(c.auc_ci_low)
    assert "no malignant images (label 1)" in c.note
    assert t.set_index("segment").loc["A", "note"] == ""


def test_segments_from_a_frame_and_global_only():
    y, s, seg = data()
    df = pd.DataFrame({"source": seg, "maker": np.where(np.arange(len(y)) % 2, "M1", "M2")})
    t = se.segment_table(y, s, se.segment_keys(df, "source,maker"))
    assert t.segment.tolist()[1] == "(A, M1)" and len(t) == 7
    assert se.segment_table(y, s, df).equals(t)
    g = se.segment_table(y, s)
    assert g.segment.tolist() == ["__global__"] and "auc_ci_low" not in g


def test_no_warning_when_everything_is_defined():
    y, s, seg = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        se.segment_table(y, s, seg, n_boot=10)


def test_bad_input():
    y, s, seg = data()
    with pytest.raises(ValueError, match="y_true has 300, segments has 299"):
        se.segment_table(y, s, seg[:-1])
    with pytest.raises(ValueError, match="y_score must be probabilities"):
        se.segment_table(y, s + 1, seg)
    with pytest.raises(ValueError, match="needs clusters"):
        se.segment_table(y, s, seg, n_boot=10, resample="cluster")
    with pytest.raises(ValueError, match="n_boot must be an integer >= 0; got -1"):
        se.segment_table(y, s, seg, n_boot=-1)


@pytest.mark.parametrize(
    "make_seed",
    [
        lambda: np.random.SeedSequence([1, 2]),  # entropy a list: the draw cache keyed on it
        lambda: np.random.SeedSequence(2**100),
        lambda: np.random.default_rng(1),
    ],
    ids=["SeedSequence([1, 2])", "large int", "Generator"],
)
def test_any_seed_kind_gives_bit_identical_tables_from_the_same_state(make_seed):
    y, s, seg = data()
    first = se.segment_table(y, s, seg, n_boot=30, seed=make_seed())
    pd.testing.assert_frame_equal(first, se.segment_table(y, s, seg, n_boot=30, seed=make_seed()))


def test_a_reused_generator_moves_on_and_a_reused_seed_sequence_does_not():
    """What the README promises: a Generator is advanced by one draw per call."""
    y, s, seg = data()
    rng, seq = np.random.default_rng(1), np.random.SeedSequence([1, 2])
    a, b = (se.segment_table(y, s, seg, n_boot=30, seed=rng) for _ in range(2))
    assert not a.auc_ci_low.equals(b.auc_ci_low)
    c, d = (se.segment_table(y, s, seg, n_boot=30, seed=seq) for _ in range(2))
    pd.testing.assert_frame_equal(c, d)
