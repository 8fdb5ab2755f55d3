"""Segment leakage: one-vs-rest AUCs within a label equal sklearn's; noise reads 0.5."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import run_inputs
from sklearn.metrics import roc_auc_score

import segeval as se
from segeval.leakage import segment_leakage


def _data(rng: np.random.Generator, n: int, k: int, offset: float):
    seg = rng.integers(0, k, n)
    y = (rng.random(n) < 0.3).astype(int)
    # Ties on purpose: scores rounded to two decimals.
    score = np.round(np.clip(0.3 + 0.3 * y + offset * seg + 0.15 * rng.standard_normal(n), 0, 1), 2)
    return y, score, np.array([f"S{c}" for c in seg])


def _brute(y, score, seg, label, segment):
    keep = y == label
    return roc_auc_score(seg[keep] == segment, score[keep])


@pytest.mark.parametrize("case", range(25))
def test_each_segment_against_the_rest_equals_sklearn(case):
    rng = np.random.default_rng(case)
    y, score, seg = _data(rng, int(rng.integers(12, 300)), int(rng.integers(2, 6)), 0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", se.UndefinedMetricWarning)  # tiny sets: one label alone
        result = segment_leakage(y, score, seg, n_boot=20, seed=case)
    for name, label in (("benign", 0), ("malignant", 1)):
        present = sorted(set(seg[y == label]))
        rows = result.table[result.table.label == name]
        assert rows.segment.tolist() == (present if len(present) > 1 else [])
        for row in rows.itertuples():
            assert row.auc == pytest.approx(_brute(y, score, seg, label, row.segment), abs=1e-12)
            assert row.n_segment == int(((seg == row.segment) & (y == label)).sum())
            assert row.n_segment + row.n_rest == int((y == label).sum())


def test_bootstrap_ci_equals_brute_force_over_the_same_indices():
    rng = np.random.default_rng(3)
    y, score, seg = _data(rng, 150, 3, 0.05)
    result = segment_leakage(y, score, seg, n_boot=50, seed=7)
    row = result.table.iloc[1]
    draws = [
        _brute(y[idx], score[idx], seg[idx], 0, row.segment)
        for idx in se.bootstrap_indices(y, n_boot=50, seed=7)
    ]
    low, high = np.quantile(draws, [0.025, 0.975])
    assert (row.ci_low, row.ci_high) == pytest.approx((low, high), abs=1e-12)


def test_noise_scores_read_about_one_half():
    rng = np.random.default_rng(0)
    n = 4000
    y = (rng.random(n) < 0.3).astype(int)
    seg = rng.choice(["A", "B", "C"], n)
    result = segment_leakage(y, rng.random(n), seg, n_boot=300, seed=0)
    assert result.benign is not None
    assert result.benign.leakage < 0.05
    assert (result.table.ci_low < 0.5).all()
    assert (result.table.ci_high > 0.5).all()


def test_a_segment_offset_is_clearly_detected():
    rng = np.random.default_rng(1)
    n = 2000
    y = (rng.random(n) < 0.3).astype(int)
    seg = rng.choice(["A", "B", "C"], n)
    # The score is the label plus a segment offset: C's images score higher whatever they show.
    score = np.clip(0.2 + 0.5 * y + 0.15 * (seg == "C") + 0.1 * rng.standard_normal(n), 0, 1)
    result = segment_leakage(y, score, seg, n_boot=300, seed=0)
    worst = result.benign
    assert worst is not None
    assert worst.segment == "C"
    assert worst.leakage > 0.3
    assert worst.ci_low > 0.5
    assert worst.p_value_holm < 1e-6


def test_same_seed_gives_identical_results():
    rng = np.random.default_rng(2)
    y, score, seg = _data(rng, 200, 3, 0.1)
    seed = np.random.SeedSequence(5)
    a = segment_leakage(y, score, seg, n_boot=40, seed=seed)
    b = segment_leakage(y, score, seg, n_boot=40, seed=seed)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.benign == b.benign


def test_a_label_in_one_segment_only_is_undefined_with_the_reason():
    y = np.array([0, 0, 0, 0, 1, 1])
    seg = np.array(["A", "A", "B", "B", "A", "A"])
    score = np.linspace(0, 1, 6)
    with pytest.warns(se.UndefinedMetricWarning, match="fewer than two segments hold malignant"):
        result = segment_leakage(y, score, seg, n_boot=10)
    assert result.malignant is None
    assert result.benign is not None
    assert result.benign.auc in (0.0, 1.0)


def test_cluster_resampling_and_bad_input():
    rng = np.random.default_rng(4)
    y, score, seg = _data(rng, 120, 2, 0.1)
    patients = np.arange(120) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = segment_leakage(y, score, seg, n_boot=30, resample="cluster", clusters=patients)
    assert len(r.table) == 4
    with pytest.raises(se.InputError, match="ci must be a confidence level"):
        segment_leakage(y, score, seg, ci=1.5)
    with pytest.raises(se.InputError, match="y_true must contain only 0 and 1"):
        segment_leakage(y + 1, score, seg)


def test_evaluate_reports_each_models_leakage_as_the_function_computes_it():
    from segeval.synthetic import make_predictions

    p = make_predictions(scale=0.1)
    ev = se.evaluate(p, segment_by="source,manufacturer", baseline="single_segment", n_boot=40)
    rows = p[p.model == "bal_labels"].sort_values("image_id", kind="stable")
    direct = segment_leakage(
        rows.label, rows.score, rows[["source", "manufacturer"]], n_boot=40, seed=0
    )
    mine = ev.leakage[ev.leakage.model == "bal_labels"]
    assert set(mine.on) == {"evaluated set"}
    mine = mine.drop(columns=["model", "on"])
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), direct.table)
    summary = ev.leakage_summary.query("model == 'bal_labels' and label == 'benign'").iloc[0]
    assert (summary.segment, summary.auc) == (direct.benign.segment, direct.benign.auc)
    # The known shortcut of the simulated bal_labels model: it leaks far more than the baseline.
    benign = ev.leakage_summary[ev.leakage_summary.label == "benign"].set_index("model")
    assert benign.leakage["bal_labels"] > benign.leakage["single_segment"] + 0.2
    assert len(ev.to_dict()["leakage_summary"]) == len(ev.leakage_summary)


def test_evaluate_measures_a_runs_leakage_on_its_validation_set(tmp_path):
    """A training run folder with preds/val.parquet (segtrain fit) adds its validation leakage,
    named as the folder; a run validated on one segment, or without val.parquet, adds none."""
    from segeval.synthetic import make_predictions

    p = make_predictions(scale=0.1)
    val = p[p.model == "bal_labels"].assign(model="whatever")
    runs = []
    for name, frame in {
        "leaky": val,
        "one_segment": val[(val.source == "S1") & (val.manufacturer == "Ma")],
        "no_preds": None,
    }.items():
        run = tmp_path / name
        (run / "preds").mkdir(parents=True)
        (run / "metrics.jsonl").write_text(
            '{"step": 1, "segment": "__global__", "wll": 0.5, "auc": 0.7}\n'
        )
        if frame is not None:
            frame.to_parquet(run / "preds" / "val.parquet")
        runs.append(run)
    ev = se.evaluate(
        p,
        segment_by="source,manufacturer",
        baseline="single_segment",
        n_boot=40,
        **run_inputs(runs),
    )
    on_val = ev.leakage[ev.leakage.on == "validation"]
    assert set(on_val.model) == {"leaky"}
    rows = val.sort_values("image_id", kind="stable")
    direct = segment_leakage(
        rows.label, rows.score, rows[["source", "manufacturer"]], n_boot=40, seed=0
    )
    pd.testing.assert_frame_equal(
        on_val.drop(columns=["model", "on"]).reset_index(drop=True), direct.table
    )
    summary = ev.leakage_summary.query("on == 'validation' and label == 'benign'").iloc[0]
    assert (summary.model, summary.auc) == ("leaky", direct.benign.auc)
    # The same images on the evaluated set give the same numbers (same seed, same resamples).
    same = ev.leakage[(ev.leakage.on == "evaluated set") & (ev.leakage.model == "bal_labels")]
    np.testing.assert_array_equal(same.auc.to_numpy(), on_val.auc.to_numpy())


def test_a_validation_file_without_the_segment_columns_warns_and_adds_nothing(tmp_path):
    from segeval.synthetic import make_predictions

    p = make_predictions(scale=0.1)
    run = tmp_path / "old_run"
    (run / "preds").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        '{"step": 1, "segment": "__global__", "wll": 0.5, "auc": 0.7}\n'
    )
    p[p.model == "bal_labels"].drop(columns="manufacturer").to_parquet(
        run / "preds" / "val.parquet"
    )
    with pytest.warns(UserWarning, match="lacks the segment column"):
        ev = se.evaluate(p, segment_by="source,manufacturer", n_boot=20, **run_inputs([run]))
    assert set(ev.leakage.on) == {"evaluated set"}


def test_the_summary_comes_with_its_permutation_null():
    """With no segment shift, the farthest segment's |AUC − 0.5| is above 0 (the bias the
    issue measured), and its permutation null says so: p_null is not small; with a planted
    benign shift it is."""
    rng = np.random.default_rng(5)
    p_null, leak, q95 = [], [], []
    for rep in range(30):
        y = rng.integers(0, 2, 400)
        seg = rng.choice(list("ABCDE"), 400)
        s = np.clip(0.3 * y + rng.normal(0.4, 0.15, 400), 0, 1)
        r = se.segment_leakage(y, s, seg, n_boot=20, seed=rep)
        p_null.append(r.benign.p_null)
        leak.append(r.benign.leakage)
        q95.append(r.benign.null_q95)
    assert np.mean(leak) > 0.03  # biased upward under the null
    assert np.mean(np.array(p_null) < 0.05) <= 0.2  # about 5% (30 datasets: SE 4 points)
    assert np.mean(np.array(leak) > np.array(q95)) <= 0.2
    shifted = np.clip(s + 0.15 * (seg == "C") * (y == 0), 0, 1)
    r = se.segment_leakage(y, shifted, seg, n_boot=20)
    assert r.benign.segment == "C" and r.benign.p_null < 0.01
    assert r.benign.leakage > r.benign.null_q95 > r.benign.null_mean > 0


def test_the_null_is_the_statistic_on_permuted_segments():
    """One permutation through the kernel equals the summary computed from scratch (sklearn) on
    the data with the segments so permuted."""
    from segeval._kernels import OneVsRestAUC

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60).astype(np.int8)
    s = np.round(rng.random(60), 1)
    seg = se.segment_keys(pd.DataFrame({"g": rng.choice(list("abc"), 60)}), "g")
    kernel = OneVsRestAUC(y, s, seg, 0)

    class Recorder:
        def permuted(self, codes, axis):
            self.codes = np.random.default_rng(9).permuted(codes, axis=axis)
            return self.codes

    rec = Recorder()
    (value,) = kernel.null_leakage(rec, 1)  # type: ignore[arg-type]
    # the permuted segment of each benign row, in the kernel's score order
    permuted = rec.codes[0]
    rows = kernel.rows
    expected = max(abs(roc_auc_score(permuted == k, s[rows]) - 0.5) for k in range(kernel.k))
    assert value == pytest.approx(expected, abs=1e-12)


def test_the_normal_null_of_large_labels_matches_the_permutations(monkeypatch):
    """Above EXACT_NULL_MAX_ROWS the null is drawn from the normal limit with the exact
    permutation covariance; on 8,000 rows with ties both give the same mean and 95th percentile
    (2,000 draws each: Monte-Carlo error about 2% of the values)."""
    import segeval._kernels as kernels

    rng = np.random.default_rng(4)
    n = 8000
    y = (rng.random(n) < 0.3).astype(np.int8)
    seg = se.segment_keys(
        pd.DataFrame({"g": rng.choice(list("abcde"), n, p=[0.5, 0.2, 0.2, 0.08, 0.02])}), "g"
    )
    s = np.round(rng.random(n), 2)
    kernel = kernels.OneVsRestAUC(y, s, seg, 0)
    exact = kernel.null_leakage(np.random.default_rng(1), 2000)
    monkeypatch.setattr(kernels, "EXACT_NULL_MAX_ROWS", 0)
    normal = kernel.null_leakage(np.random.default_rng(1), 2000)
    assert normal.mean() == pytest.approx(exact.mean(), rel=0.05)
    assert np.quantile(normal, 0.95) == pytest.approx(np.quantile(exact, 0.95), rel=0.07)
