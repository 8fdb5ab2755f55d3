"""The data table (Table 1) and its warnings."""

from __future__ import annotations

import numpy as np
import pytest

from segeval.audit import audit_data


def test_table_counts_by_brute_force():
    rng = np.random.default_rng(0)
    seg = rng.choice(["A", "B", "C"], 300)
    y = (rng.random(300) < 0.3).astype(int)
    t = audit_data(y, seg, min_positives=1).table.set_index("segment")
    for name in "ABC":
        m = seg == name
        assert t.loc[name, "malignant"] == y[m].sum()
        assert t.loc[name, "benign"] == (1 - y[m]).sum()
        assert t.loc[name, "prevalence"] == pytest.approx(y[m].mean())
    assert t.loc["__global__", "n"] == 300


def test_prevalence_imbalance_is_flagged_with_numbers():
    y = [1] * 40 + [0] * 60 + [1] * 5 + [0] * 95
    seg = ["A"] * 100 + ["B"] * 100
    (warning,) = audit_data(y, seg, min_positives=1).warnings
    assert warning.startswith(
        "Prevalence differs across segments: 40.0% in A against 5.0% in B "
        "(8.0 times as high; chi-square p = "
    )


def test_balanced_data_has_no_warning():
    y = [1, 0] * 50
    assert (
        audit_data(y, ["A"] * 50 + ["B"] * 50, patients=list(range(100)), min_positives=10).warnings
        == ()
    )


def test_few_positives_and_shared_patients():
    y = [1, 0, 0, 0, 1, 0, 0, 0]
    seg = ["A", "A", "A", "A", "B", "B", "B", "B"]
    patients = ["p1", "p1", "p2", "p3", "p1", "p4", "p5", "p6"]
    warnings = audit_data(y, seg, patients=patients, min_positives=30).warnings
    assert warnings == (
        "2 segment(s) have fewer than 30 positives, too few for a stable AUC: A (1), B (1).",
        "1 patient(s) appear in more than one segment (e.g. p1 in A and B); their images are "
        "not independent across segments.",
    )
    assert audit_data(y, seg, patients=patients).table.patients.tolist() == [3, 4, 6]


def test_a_segment_without_positives_is_named_not_called_infinitely_rarer():
    labels = [1] * 40 + [0] * 60 + [0] * 100
    audit = audit_data(labels, ["A"] * 100 + ["B"] * 100, min_positives=1)
    (warning,) = [w for w in audit.warnings if w.startswith("Prevalence")]
    assert "no malignant image in B" in warning and "infinitely" not in warning
