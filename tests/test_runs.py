"""ΔAUC over images and seeds: reduces to the paired bootstrap, covers the truth by simulation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

import segeval as se
from segeval.io import read_predictions
from segeval.runs import bootstrap_delta_auc_runs
from segeval.synthetic import make_predictions

NOISE_SD = np.hypot(0.7, 0.7)  # shared image difficulty + each run's own noise


def _runs(rng, y, u, mu, tau, n_runs):
    """Scores of n_runs seeds of one recipe: each seed reaches its own separation mu_r."""
    mus = rng.normal(mu, tau, n_runs)
    raw = mus[:, None] * y + 0.7 * u + 0.7 * rng.standard_normal((n_runs, y.size))
    return 1 / (1 + np.exp(-raw))


def _population_auc(mu, tau):
    """E over seeds of the binormal AUC Φ(mu_r / (√2·sd)), by Gauss-Hermite quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(60)
    return float(np.sum(w * norm.cdf((mu + tau * x) / (np.sqrt(2) * NOISE_SD))) / w.sum())


def test_one_run_each_equals_the_paired_bootstrap_exactly():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    a, b = rng.random(200), np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1)
    runs = bootstrap_delta_auc_runs(y, a, b, n_boot=300, seed=4)
    paired = se.bootstrap_delta_auc(y, a, b, n_boot=300, seed=4)
    assert (runs.delta, runs.ci_low, runs.ci_high, runs.se) == (
        paired.delta,
        paired.ci_low,
        paired.ci_high,
        paired.se,
    )
    assert (runs.p_value, runs.verdict) == (paired.p_value, paired.verdict)
    assert (runs.images_ci_low, runs.images_ci_high) == (paired.ci_low, paired.ci_high)


def test_point_estimate_is_the_difference_of_mean_run_aucs():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 150)
    u = rng.standard_normal(150)
    a, b = _runs(rng, y, u, 1.0, 0.3, 3), _runs(rng, y, u, 1.3, 0.3, 4)
    r = bootstrap_delta_auc_runs(y, a, b, n_boot=50)
    auc_a = [roc_auc_score(y, s) for s in a]
    auc_b = [roc_auc_score(y, s) for s in b]
    assert r.runs_auc_a == pytest.approx(auc_a, abs=1e-12)
    assert r.runs_auc_b == pytest.approx(auc_b, abs=1e-12)
    assert r.delta == pytest.approx(np.mean(auc_b) - np.mean(auc_a), abs=1e-12)


def test_seed_variation_widens_the_interval_and_same_seed_is_identical():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    u = rng.standard_normal(400)
    a, b = _runs(rng, y, u, 1.2, 0.4, 5), _runs(rng, y, u, 1.2, 0.4, 5)
    seed = np.random.SeedSequence(11)
    r = bootstrap_delta_auc_runs(y, a, b, n_boot=400, seed=seed)
    again = bootstrap_delta_auc_runs(y, a, b, n_boot=400, seed=seed)
    assert r == again
    assert r.ci_high - r.ci_low > 1.3 * (r.images_ci_high - r.images_ci_low)


def _coverage(regime: str, runs: int, reps: int) -> float:
    """Coverage of the across-seed 95% CI over ``reps`` simulated experiments of
    bench/coverage_runs.py's design (its regimes and true ΔAUC)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from coverage_runs import REGIMES, replicate, true_delta

    sd_u, sd_c, sd_e = REGIMES[regime]
    truth = true_delta(sd_u, sd_c**2 + sd_e**2)
    rng = np.random.default_rng(7)
    hits = 0
    for k in range(reps):
        low, high, _ = replicate(rng, regime, runs, n_boot=150, seed=k)
        hits += low <= truth <= high
    return hits / reps


@pytest.mark.parametrize(
    ("regime", "runs"), [("seed shift", 5), ("seed shift", 3), ("image noise", 5)]
)
def test_coverage_by_simulation_is_near_nominal_whichever_variation_dominates(regime, runs):
    """Nominal 95%. 250 experiments give a Monte-Carlo SE of 1.4 points at 95% (2.1 at 88%):
    the bounds 91.5% and 98.5% pass a calibrated interval (2.5 SE of margin) and fail the
    pigeonhole percentile interval this replaced, measured at 88.7% and 84.0% when a seed
    shift dominates (R = 5, 3) and 99.3% when runs differ only by their own image noise
    (bench/README.md)."""
    coverage = _coverage(regime, runs, reps=250)
    assert 0.915 <= coverage <= 0.985, coverage


def test_one_runs_images_only_interval_misses_the_seed_variation():
    mu_a, mu_b, tau, n, runs, reps = 1.2, 1.35, 0.3, 300, 5, 60
    truth = _population_auc(mu_b, tau) - _population_auc(mu_a, tau)
    rng = np.random.default_rng(2024)
    single = 0
    for rep in range(reps):
        y = (rng.random(n) < 0.3).astype(int)
        u = rng.standard_normal(n)
        a, b = _runs(rng, y, u, mu_a, tau, runs), _runs(rng, y, u, mu_b, tau, runs)
        one = bootstrap_delta_auc_runs(y, a[0], b[0], n_boot=200, seed=rep)
        single += one.ci_low <= truth <= one.ci_high
    assert single / reps <= 0.70


def test_bad_input_and_undefined():
    y = np.array([0, 1, 0, 1])
    with pytest.raises(se.InputError, match="scores_b scores 3 images per run but y_true has 4"):
        bootstrap_delta_auc_runs(y, np.ones((2, 4)) / 2, np.ones((2, 3)) / 2)
    with pytest.raises(se.InputError, match=r"scores_a must have shape \(runs, images\)"):
        bootstrap_delta_auc_runs(y, np.ones((2, 2, 4)), np.ones(4))
    with pytest.raises(se.InputError, match="every run; got runs of 4, 3 scores"):
        bootstrap_delta_auc_runs(y, [np.ones(4) / 2, np.ones(3) / 2], np.ones(4) / 2)
    with pytest.warns(se.UndefinedMetricWarning, match="Only negatives"):
        r = bootstrap_delta_auc_runs(np.zeros(4), np.ones((2, 4)) / 2, np.ones(4) / 2)
    assert np.isnan(r.delta)
    assert r.verdict == "undefined"


def _predictions_with_runs(n_runs: int = 3) -> pd.DataFrame:
    p = make_predictions(scale=0.1)
    rng = np.random.default_rng(0)
    runs = []
    for r in range(n_runs):
        q = p.assign(run=f"s{r}")
        q["score"] = np.clip(q.score + rng.normal(0, 0.05, len(q)), 0, 1)
        runs.append(q)
    return pd.concat(runs, ignore_index=True)


def test_evaluate_compares_recipes_over_images_and_seeds():
    preds = _predictions_with_runs()
    ev = se.evaluate(preds, segment_by="source", baseline="single_segment", n_boot=60, seed=3)
    assert "periodic [run s1]" in ev.models
    # The per-run tables compare each run with the baseline's first run.
    assert set(ev.comparisons.baseline) == {"single_segment [run s0]"}
    row = ev.recipe_comparisons.query("model == 'periodic' and segment == @se.GLOBAL").iloc[0]
    ordered = preds.sort_values(["image_id"], kind="stable")
    y = ordered[ordered.model == "periodic"].groupby("run").label.apply(np.array).iloc[0]
    runs = {
        m: np.stack(list(g.groupby("run").score.apply(np.array)))
        for m, g in ordered.groupby("model")
    }
    direct = bootstrap_delta_auc_runs(
        y, runs["single_segment"], runs["periodic"], n_boot=60, seed=3
    )
    assert (row.delta_auc, row.delta_ci_low, row.delta_ci_high, row.p_value) == (
        direct.delta,
        direct.ci_low,
        direct.ci_high,
        direct.p_value,
    )
    assert (row.n_runs, row.n_runs_baseline) == (3, 3)
    deltas = ev.run_deltas.query("model == 'periodic' and segment == @se.GLOBAL")
    assert deltas.run.tolist() == ["s0", "s1", "s2"]
    expected = np.array(direct.runs_auc_b) - np.mean(direct.runs_auc_a)
    assert deltas.delta_auc.to_numpy() == pytest.approx(expected, abs=1e-12)
    assert {"p_holm", "verdict_holm"} <= set(ev.recipe_comparisons.columns)
    report = ev.to_dict()
    assert len(report["recipe_comparisons"]) == len(ev.recipe_comparisons)
    assert len(report["run_deltas"]) == len(ev.run_deltas)


def test_the_scorecard_has_one_row_per_model_over_its_runs():
    ev = se.evaluate(
        _predictions_with_runs(), segment_by="source", baseline="single_segment", n_boot=60
    )
    card = ev.scorecard.set_index("model")
    assert sorted(card.index) == ["bal_labels", "periodic", "single_segment"]
    per_run = ev.metrics[ev.metrics.segment == se.GLOBAL].set_index("model").auc
    runs = [f"periodic [run s{k}]" for k in range(3)]
    row = card.loc["periodic"]
    assert row.n_runs == 3
    assert row.auc == pytest.approx(per_run[runs].mean(), abs=1e-12)
    assert (row.auc_runs_min, row.auc_runs_max) == (per_run[runs].min(), per_run[runs].max())
    recipe = ev.recipe_comparisons.set_index(["model", "segment"])
    glob = recipe.loc[("periodic", se.GLOBAL)]
    assert (row.delta_auc, row.delta_ci_low, row.p_holm, row.verdict_holm) == (
        glob.delta_auc,
        glob.delta_ci_low,
        glob.p_holm,
        glob.verdict_holm,
    )
    local = ev.recipe_comparisons.query("model == 'periodic' and segment != @se.GLOBAL")
    assert row.n_segments_compared == len(local)
    if not row.n_segments_worse:
        assert row.worst_delta_auc == local.delta_auc.min()
    # On test, the scorecard counts the runs the diagnostics flag.
    flagged = ev.diagnostics.query("on == 'evaluated set' and model in @runs").suspicious.sum()
    assert row.segment_bias_test == flagged
    assert pd.isna(card.loc["single_segment"].delta_auc)  # the baseline
    assert ev.to_dict()["scorecard"][0]["n_runs"] == 3


def test_without_runs_there_is_no_recipe_table_and_bad_runs_are_refused():
    p = make_predictions(scale=0.05)
    ev = se.evaluate(p, segment_by="source", baseline="single_segment", n_boot=20)
    assert ev.recipe_comparisons.empty
    assert ev.run_deltas.empty
    bad = _predictions_with_runs(2)
    bad.loc[5, "run"] = None
    with pytest.raises(se.InputError, match="Column 'run' of 'predictions' has 1 missing value"):
        se.evaluate(bad, segment_by="source", baseline="single_segment", n_boot=20)
    twice = pd.concat([_predictions_with_runs(2), _predictions_with_runs(2).head(1)])
    with pytest.raises(se.InputError, match=r"1 duplicate \(image_id, model, run\) row\(s\)"):
        se.evaluate(twice, segment_by="source", baseline="single_segment", n_boot=20)


def test_without_runs_the_run_frames_have_their_columns_and_dtypes():
    """A user's ev.recipe_comparisons.query("p_holm < 0.05") failed on a frame without columns."""
    without = se.evaluate(
        make_predictions(scale=0.05), segment_by="source", baseline="single_segment", n_boot=20
    )
    with_runs = se.evaluate(
        _predictions_with_runs(2), segment_by="source", baseline="single_segment", n_boot=20
    )
    for name in ("recipe_comparisons", "leakage_runs", "run_deltas"):
        empty, full = getattr(without, name), getattr(with_runs, name)
        assert empty.empty and len(full), name
        pd.testing.assert_series_equal(empty.dtypes, full.dtypes, obj=name)
    assert without.recipe_comparisons.query("p_holm < 0.05").empty
    assert without.leakage_runs.query("n_runs_significant > 0").empty
    assert without.recipe_comparisons.delta_auc.dtype == float
    assert without.to_dict()["recipe_comparisons"] == []


def test_the_scorecard_over_runs_has_numeric_dtypes():
    ev = se.evaluate(
        _predictions_with_runs(), segment_by="source", baseline="single_segment", n_boot=20
    )
    dtypes = ev.scorecard.dtypes.astype(str)
    assert not (dtypes == "object").any(), dtypes[dtypes == "object"]
    assert dtypes["segment_bias_test"] == "Int64"  # runs flagged
    assert dtypes["n_runs"] == "Int64" and dtypes["auc_runs_min"] == "float64"


def test_report_cli_shows_the_seed_section(tmp_path):
    path = tmp_path / "runs.parquet"
    _predictions_with_runs(2).to_parquet(path)
    out = tmp_path / "r" / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "segeval.cli", "report", "--preds", str(path), "--segment-by",
         "source", "--baseline", "single_segment", "--n-boot", "30", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert 'id="seeds"' in page
    assert 'id="leakage"' in page
    # Figures: each model once (its first run), not once per run; the tables have every run.
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["runs"]["periodic"] == ["periodic [run s0]", "periodic [run s1]"]
    assert page.count('alt="ROC curves of') == len(data["runs"]) == 3
    assert page.count('alt="ROC curves of periodic [run s0]"') == 1
    assert "<h3>periodic [run s1]</h3>" in page
    assert (tmp_path / "r" / "report_recipe_comparisons.csv").exists()


def test_leakage_over_runs_summarises_each_models_runs():
    ev = se.evaluate(
        _predictions_with_runs(), segment_by="source", baseline="single_segment", n_boot=40
    )
    row = ev.leakage_runs.query("model == 'periodic' and label == 'benign'").iloc[0]
    runs = ev.leakage_summary.query(
        "model.str.startswith('periodic [run') and label == 'benign'", engine="python"
    )
    assert row.n_runs == len(runs) == 3
    assert row.leakage_mean == pytest.approx(runs.leakage.mean(), abs=1e-12)
    assert (row.leakage_min, row.leakage_max) == (runs.leakage.min(), runs.leakage.max())
    assert row.n_runs_significant == (runs.p_value_holm < 0.05).sum()
    assert sum(int(part.rsplit("×", 1)[1]) for part in row.segments.split("; ")) == 3
    assert len(ev.to_dict()["leakage_runs"]) == len(ev.leakage_runs)
    assert se.evaluate(
        make_predictions(scale=0.05), segment_by="source", n_boot=20
    ).leakage_runs.empty


def test_the_users_own_columns_named_like_ours_are_theirs(tmp_path):
    """A user column named recipe is the user's (a segment column here), not an internal one."""
    preds = _predictions_with_runs(2)
    preds["recipe"] = np.where(preds.source == "S1", "protocol_a", "protocol_b")
    ev = se.evaluate(preds, segment_by="recipe", baseline="single_segment", n_boot=20)
    assert set(ev.segments) == {se.GLOBAL, "protocol_a", "protocol_b"}
    assert sorted(ev.scorecard.model) == ["bal_labels", "periodic", "single_segment"]
    with pytest.raises(se.InputError, match=r"available columns: image_id, .*recipe") as info:
        se.evaluate(preds, segment_by="hospital", n_boot=20)
    assert "__" not in str(info.value)


def test_a_file_without_runs_beside_files_with_runs_is_one_run(tmp_path):
    preds = _predictions_with_runs(2)
    base = preds[(preds.model == "single_segment") & (preds.run == "s0")].drop(columns="run")
    base.to_parquet(tmp_path / "baseline.parquet")
    preds[preds.model != "single_segment"].to_parquet(tmp_path / "recipes.parquet")
    both = read_predictions([tmp_path / "baseline.parquet", tmp_path / "recipes.parquet"])
    ev = se.evaluate(both, segment_by="source", baseline="single_segment", n_boot=20)
    assert "single_segment" in ev.models  # one run keeps its name
    assert set(ev.recipe_comparisons.n_runs_baseline) == {1}
    assert set(ev.recipe_comparisons.n_runs) == {2}
    assert any(
        "different numbers of runs (bal_labels 2, periodic 2, single_segment 1)" in w
        for w in ev.data_warnings
    )
    same = se.evaluate(preds, segment_by="source", baseline="single_segment", n_boot=20)
    assert not any("numbers of runs" in w for w in same.data_warnings)


def test_messages_name_the_models_not_their_runs():
    preds = _predictions_with_runs(2)
    with pytest.raises(
        se.InputError,
        match=r"Unknown baseline .basline.; the models are bal_labels, periodic, single_segment\.",
    ):
        se.evaluate(preds, segment_by="source", baseline="basline", n_boot=20)
    seeds = preds.rename(columns={"run": "seed"})
    with pytest.raises(se.InputError, match="go in a 'run' column"):
        se.evaluate(seeds, segment_by="source", n_boot=20)
