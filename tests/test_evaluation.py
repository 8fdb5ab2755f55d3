"""evaluate: tables equal the statistics called directly on each model's rows."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import run_inputs

import segeval as se
from segeval.evaluation import evaluate
from segeval.synthetic import make_predictions
from segeval.validation import InputError


@pytest.fixture(scope="module")
def preds():
    # Shuffled, so that aligning models on image_id is actually exercised.
    return make_predictions(scale=0.1, seed=2).sample(frac=1.0, random_state=0)


@pytest.fixture(scope="module")
def evaluation(preds):
    return evaluate(
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
    with pytest.warns(UserWarning, match="source, manufacturer that look like data segments"):
        ev = evaluate(preds, segment_by=None, n_boot=10)
    assert ev.comparisons.empty
    assert ev.metrics.segment.unique().tolist() == ["__global__"]


def test_segment_like_columns_left_out_are_named_not_used(preds):
    """Issue 23: a report without segments must not read as 'no segment bias'."""
    with pytest.warns(UserWarning, match=r"--segment-by source,manufacturer") as caught:
        ev = evaluate(preds, segment_by=None, n_boot=10)
    assert len([w for w in caught if "look like data segments" in str(w.message)]) == 1
    assert ev.settings["unused_segment_columns"] == ["source", "manufacturer"]
    assert ev.segments == ("__global__",)  # warned, not inferred
    assert "--segment-by source,manufacturer" in ev.data_warnings[0]
    # named (or absent, or not text, or one value per image): no warning
    assert evaluate(preds, segment_by="source", n_boot=5).settings["unused_segment_columns"] == []
    plain = preds.drop(columns=["source", "manufacturer"]).assign(
        age=1.0, note=preds.image_id, site="A"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert evaluate(plain, segment_by=None, n_boot=5).settings["unused_segment_columns"] == []


def test_cluster_resampling_uses_the_column(preds):
    ev = evaluate(preds, segment_by="source", n_boot=20, cluster="patient_id")
    assert ev.settings["resample"] == "cluster"


def test_inconsistent_labels_across_models(preds):
    bad = preds.copy()
    first = bad.index[bad.model == "periodic"][0]
    bad.loc[first, "label"] = 1 - bad.loc[first, "label"]
    with pytest.raises(InputError, match="give different labels to the same image_id"):
        evaluate(bad, segment_by=None, n_boot=10)


def test_op_spread_equals_op_synchronization(preds, evaluation):
    p = by_model(preds, "bal_labels")
    ref = se.op_synchronization(p.label, p.score, p[["source", "manufacturer"]], n_boot=100, seed=3)
    got = evaluation.op_spread[evaluation.op_spread.model == "bal_labels"].drop(columns="model")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref.spread)
    points = evaluation.op_points[
        (evaluation.op_points.model == "bal_labels") & (evaluation.op_points.segment != se.GLOBAL)
    ]
    np.testing.assert_array_equal(points.tpr.to_numpy(), ref.points.tpr.to_numpy())


def test_roc_and_histograms_come_from_the_metrics(preds, evaluation):
    p = by_model(preds, "periodic")
    curve = evaluation.roc[
        (evaluation.roc.model == "periodic") & (evaluation.roc.segment == se.GLOBAL)
    ]
    full = se.roc_curve(p.label, p.score)
    assert curve.fpr.iloc[0] == 0 and curve.fpr.iloc[-1] == 1
    assert set(zip(curve.fpr, curve.tpr, strict=True)) <= set(zip(full.fpr, full.tpr, strict=True))
    hist = evaluation.score_hist[
        (evaluation.score_hist.model == "periodic")
        & (evaluation.score_hist.segment == se.GLOBAL)
        & (evaluation.score_hist.label == 1)
    ]
    widths = hist.bin_right - hist.bin_left
    assert (hist.density * widths).sum() == pytest.approx(1.0)
    assert hist.n.iloc[0] == p.label.sum()


def test_per_segment_baselines(preds):
    ev = evaluate(
        preds,
        segment_by="source",
        baseline=["single_segment", "S2=periodic"],
        n_boot=20,
    )
    assert ev.baselines == {
        "__global__": "single_segment",
        "S1": "single_segment",
        "S2": "periodic",
        "S3": "single_segment",
    }
    s2 = ev.comparisons[ev.comparisons.segment == "S2"]
    assert set(s2.baseline) == {"periodic"} and set(s2.model) == {"bal_labels", "single_segment"}
    with pytest.raises(
        InputError,
        match=r"Unknown segment 'S9' in --baseline; the segments are "
        r"S1, S2, S3",
    ):
        evaluate(preds, segment_by="source", baseline={"S9": "periodic"}, n_boot=5)
    with pytest.raises(InputError, match="Unknown baseline 'nobody'"):
        evaluate(preds, segment_by="source", baseline={"S1": "nobody"}, n_boot=5)


def test_training_runs_are_read(tmp_path, preds):
    run = tmp_path / "runA"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"step": 1, "segment": "__global__", "wll": 0.7, "auc": 0.6}\n'
        '{"step": 2, "segment": "__global__", "wll": 0.6, "auc": 0.7}\n'
    )
    ev = evaluate(preds, segment_by=None, **run_inputs([run]), n_boot=5)
    assert ev.training.run.tolist() == ["runA", "runA"] and ev.training.auc.tolist() == [0.6, 0.7]
    (run / "metrics.jsonl").write_text(
        '{"step": 1, "segment": "__global__", "wll": 0.7}\nnot json\n'
    )
    with pytest.raises(InputError, match=r"Line 1 of .* lacks the field\(s\) auc"):
        evaluate(preds, segment_by=None, **run_inputs([run]), n_boot=5)
    with pytest.raises(InputError, match=r"has no metrics\.jsonl"):
        evaluate(preds, segment_by=None, **run_inputs([tmp_path]), n_boot=5)
    with pytest.raises(InputError, match=r"The run directory '.*nope' does not exist"):
        evaluate(preds, segment_by=None, **run_inputs([tmp_path / "nope"]), n_boot=5)


def test_validation_curves_are_diagnosed_too(tmp_path, preds):
    run = tmp_path / "shortcut"
    run.mkdir()
    lines = [
        {"step": s, "segment": seg, "wll": w, "auc": a}
        for s in (10, 20)
        for seg, w, a in (("__global__", 0.4, 0.9), ("(S1, Ma)", 0.6, 0.7), ("(S2, Ma)", 0.5, 0.8))
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    ev = evaluate(preds, segment_by="source", **run_inputs([run]), n_boot=5)
    row = ev.diagnostics[ev.diagnostics.on == "validation, last step"].iloc[0]
    assert row.model == "shortcut" and row.suspicious
    assert row.message.startswith("Validation: shortcut: global AUC 0.900 is above every local")
    assert set(ev.diagnostics.on) == {"evaluated set", "validation, last step"}


def test_progress_reports_every_resample_and_the_total(preds):
    seen = []
    evaluate(
        preds,
        segment_by="source",
        n_boot=7,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert {total for _, total in seen} == {7 * 4}  # the whole set and 3 sources
    assert sum(done for done, _ in seen) == 7 * 4


class FakePolars:
    """Stands for a polars DataFrame: anything with to_pandas()."""

    def __init__(self, frame):
        self.frame = frame

    def to_pandas(self):
        return self.frame.copy()


def test_public_evaluate_matches_the_report_files(preds, tmp_path):
    ev = se.evaluate(FakePolars(preds), segment_by="source", baseline="single_segment", n_boot=20)
    assert isinstance(ev, se.Evaluation)
    paths = ev.write(tmp_path / "r.html")
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(
        json.dumps(ev.to_dict(), allow_nan=False)
    )
    assert {p.name for p in paths} >= {"r.html", "r.json", "r_metrics.csv", "r_comparisons.csv"}
    assert "p_holm" in ev.comparisons and len(ev.comparisons) == 2 * len(ev.segments)
    summary = ev._repr_html_()
    assert "<table" in summary and "single_segment" in summary
    # The scorecard's numbers, as the report's first screen shows them.
    row = ev.scorecard.set_index("model").loc["periodic"]
    assert f"<td>{row.delta_auc:+.4f}</td>" in summary and row.verdict_holm in summary
    assert len(repr(ev)) < 2000 and "np.float64" not in repr(ev)


def test_the_scorecard_has_numeric_dtypes(evaluation):
    """All its columns were object: ev.scorecard.auc.mean() or .describe() did not work."""
    card = evaluation.scorecard
    dtypes = card.dtypes.astype(str).to_dict()
    assert "object" not in dtypes.values(), dtypes
    for column in ("auc", "auc_ci_low", "delta_auc", "p_holm", "worst_delta_auc"):
        assert dtypes[column] == "float64", column
    for column in ("leakage_benign", "leakage_null_q95", "op_spread_max", "op_spread_threshold"):
        assert dtypes[column] == "float64", column
    for column in ("n_segments_compared", "n_segments_better", "n_segments_worse"):
        assert dtypes[column] == "Int64", column
    assert dtypes["segment_bias_test"] == dtypes["segment_bias_validation"] == "boolean"
    for column in ("model", "baseline", "verdict_holm", "worst_segment", "summary"):
        assert pd.api.types.is_string_dtype(card[column]), column
    base = card.set_index("model").loc["single_segment"]
    assert pd.isna(base.n_segments_compared) and pd.isna(base.baseline)  # the baseline's row
    assert card.auc.mean() > 0.5 and card.n_segments_worse.sum() >= 0
    # report.json keeps plain JSON types: a missing count is null, not pd.NA
    first = evaluation.to_dict()["scorecard"][0]
    assert first["n_segments_compared"] is None and isinstance(first["segment_bias_test"], bool)


def test_evaluate_refuses_a_table_without_image_id(preds):
    with pytest.raises(InputError, match="lacks the required column\\(s\\) image_id"):
        se.evaluate(preds.drop(columns="image_id"), segment_by=None, n_boot=5)


def test_evaluate_refuses_repeated_images_within_a_model(preds):
    one = preds[preds.model == "periodic"]
    with pytest.raises(InputError, match="3 duplicate \\(image_id, model\\) row"):
        se.evaluate(pd.concat([one, one.iloc[:3]]), segment_by=None, n_boot=5)


def test_evaluate_validates_its_options(preds):
    with pytest.raises(InputError, match="ci must be a confidence level"):
        se.evaluate(preds, segment_by=None, n_boot=5, ci=1.5)
    with pytest.raises(InputError, match="segment_by is empty"):
        se.evaluate(preds, segment_by="", n_boot=5)
    with pytest.raises(InputError, match="thresholds must lie in \\[0, 1\\]"):
        se.evaluate(preds, segment_by=None, n_boot=5, thresholds=[0.5, 1.5])
    with pytest.raises(InputError, match='resample="cluster" needs cluster='):
        se.evaluate(preds, segment_by=None, n_boot=5, resample="cluster")


def test_baseline_takes_the_cli_forms_and_a_mapping(preds):
    kw = {"segment_by": "source", "n_boot": 5}
    a = se.evaluate(preds, baseline=["single_segment", "S2=periodic"], **kw)
    mapping = {s: "single_segment" for s in a.segments} | {"S2": "periodic"}
    b = se.evaluate(preds, baseline=mapping, **kw)
    assert a.baselines == b.baselines
    pd.testing.assert_frame_equal(a.comparisons, b.comparisons)


def test_stratified_resampling_is_available(preds):
    ev = se.evaluate(preds, segment_by=None, n_boot=20, resample="stratified")
    assert ev.settings["resample"] == "stratified"
    assert (ev.metrics.n_boot_undefined == 0).all()  # both classes in every resample


def test_delong_column_is_undefined_for_a_segment_with_one_positive(preds):
    p = preds.copy()
    s2 = p.source == "S2"
    keep = p[s2 & (p.label == 1)].image_id.unique()[:1]
    p.loc[s2 & (p.label == 1) & ~p.image_id.isin(keep), "label"] = 0
    with pytest.warns(se.UndefinedMetricWarning, match="at least two positives"):
        ev = se.evaluate(p, segment_by="source", baseline="single_segment", n_boot=20)
    rows = ev.comparisons[ev.comparisons.segment == "S2"]
    assert rows.p_value_delong.isna().all()
    other = ev.comparisons[ev.comparisons.segment == "S1"]
    assert other.p_value_delong.notna().all()


@pytest.mark.parametrize(
    "make_seed",
    [lambda: np.random.SeedSequence([1, 2]), lambda: np.random.default_rng(1)],
    ids=["SeedSequence([1, 2])", "Generator"],
)
def test_evaluate_takes_any_seed_kind_and_repeats_itself(preds, make_seed):
    """SeedSequence([1, 2]) raised TypeError (unhashable list) in the draw cache."""
    runs = [
        evaluate(preds, segment_by="source", baseline="single_segment", n_boot=20, seed=make_seed())
        for _ in range(2)
    ]
    pd.testing.assert_frame_equal(runs[0].metrics, runs[1].metrics)
    pd.testing.assert_frame_equal(runs[0].comparisons, runs[1].comparisons)
