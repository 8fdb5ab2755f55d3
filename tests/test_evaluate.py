"""evaluate_predictions: tables equal the statistics called directly on each model's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import segeval as se
from segeval._validation import InputError
from segeval.evaluate import evaluate_predictions
from segeval.synthetic import make_predictions


@pytest.fixture(scope="module")
def preds():
    # Shuffled, so that aligning models on image_id is actually exercised.
    return make_predictions(scale=0.1, seed=2).sample(frac=1.0, random_state=0)


@pytest.fixture(scope="module")
def evaluation(preds):
    return evaluate_predictions(
        preds, segment_by="source,manufacturer", baseline="single_segment", n_boot=100, seed=3
    )


def by_model(preds, model):
    return preds[preds.model == model].sort_values("image_id")


def test_metrics_equal_segment_table(preds, evaluation):
    p = by_model(preds, "periodic")
    ref = se.segment_table(p.label, p.score, p[["source", "manufacturer"]], n_boot=100, seed=3)
    got = evaluation.metrics[evaluation.metrics.model == "periodic"].drop(columns="model")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref)


def test_comparisons_equal_paired_bootstrap_and_holm(preds, evaluation):
    base, other = by_model(preds, "single_segment"), by_model(preds, "bal_labels")
    assert (base.image_id.to_numpy() == other.image_id.to_numpy()).all()
    m = (base.source == "S1").to_numpy() & (base.manufacturer == "Ma").to_numpy()
    ref = se.bootstrap_delta_auc(
        base.label.to_numpy()[m],
        base.score.to_numpy()[m],
        other.score.to_numpy()[m],
        n_boot=100,
        seed=3,
    )
    row = evaluation.comparisons.set_index(["model", "segment"]).loc[("bal_labels", "(S1, Ma)")]
    assert (row.delta_auc, row.delta_ci_low, row.delta_ci_high, row.p_value) == (
        ref.delta,
        ref.ci_low,
        ref.ci_high,
        ref.p_value,
    )
    assert row.verdict == ref.verdict
    np.testing.assert_array_equal(
        evaluation.comparisons.p_holm, se.holm(evaluation.comparisons.p_value)
    )
    assert len(evaluation.comparisons) == 2 * 6  # two models x (global + 5 segments)


def test_without_baseline_or_segments(preds):
    ev = evaluate_predictions(preds, segment_by=None, n_boot=10)
    assert ev.comparisons.empty
    assert ev.metrics.segment.unique().tolist() == ["__global__"]


def test_cluster_resampling_uses_the_column(preds):
    ev = evaluate_predictions(preds, segment_by="source", n_boot=20, cluster="patient_id")
    assert ev.settings["resample"] == "cluster"


def test_inconsistent_labels_across_models(preds):
    bad = preds.copy()
    first = bad.index[bad.model == "periodic"][0]
    bad.loc[first, "label"] = 1 - bad.loc[first, "label"]
    with pytest.raises(InputError, match="give different labels to the same image_id"):
        evaluate_predictions(bad, segment_by=None, n_boot=10)
