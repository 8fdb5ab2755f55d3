"""The metric registry and the open engine: every metric per segment, with CIs and paired
differences, from the same resamples; today's numbers unchanged."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_score, roc_auc_score, roc_curve
from test_op_kernels import citl_brentq, slope_trust_exact

import segeval as se
from segeval import registry
from segeval.engine import evaluate_part
from segeval.registry import (
    MetricFamily,
    MetricSpec,
    get_metric,
    register,
    resolve_metrics,
)
from segeval.resampling import BootstrapOptions
from segeval.synthetic import make_predictions
from segeval.validation import InputError, UndefinedMetricWarning

DATA = Path(__file__).parent / "data"
SOLVER = 1e-9  # the calibration references are iterative solvers polished to ~1e-10


def close(a, b, path="", tol=0.0):
    """Every number of ``a`` (nested JSON) equals the one at the same place in ``b``."""
    if isinstance(a, dict):
        for k in a:
            close(a[k], b[k], f"{path}.{k}", tol)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]", tol)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=tol, abs=tol), path
    else:
        assert a == b, path


ACROSS_SEEDS = (
    "delta_ci_low", "delta_ci_high", "p_value", "p_value_bootstrap", "p_holm", "verdict",
    "verdict_holm", "n_segments_better", "n_segments_worse", "worst_segment", "worst_delta_auc",
    "worst_verdict_holm",
)  # fmt: skip


@pytest.mark.parametrize("runs", [False, True])
def test_default_metrics_give_todays_numbers_bit_for_bit(runs):
    """tests/data/before_registry.json.gz: every number of a small evaluation (metrics,
    comparisons, OP spread, diagnostics, leakage, the across-seed comparisons, the scorecard)
    as the code before the registry and in-engine leakage computed it (commit afb9b1c)."""
    with gzip.open(DATA / "before_registry.json.gz", "rt") as f:
        before = json.load(f)["runs" if runs else "plain"]
    p = make_predictions(scale=0.05, seed=3)
    if runs:
        rng = np.random.default_rng(1)
        frames = []
        for r in range(3):
            q = p.copy()
            q["run"] = r
            q["score"] = np.clip(q["score"] + rng.normal(0, 0.03, len(q)), 0, 1)
            frames.append(q)
        p = pd.concat(frames, ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = se.evaluate(
            p,
            segment_by="source",
            baseline="single_segment",
            n_boot=25,
            seed=5,
            cluster="patient_id",
        )
    now = ev.to_dict()
    if runs:  # issue 18 replaced the across-seed interval on purpose: its CI, p and verdicts
        for key in ("recipe_comparisons", "scorecard"):
            for rows in (before[key], now[key]):
                for row in rows:
                    for field in ACROSS_SEEDS:
                        row.pop(field, None)
    # issue 23 puts the baseline first on the scorecard: compare its rows model by model
    for table in (before, now):
        table["scorecard"] = sorted(table["scorecard"], key=lambda row: row["model"])
    close(before, {k: now[k] for k in before})
    assert ev.settings["metrics"] == ["wll", "auc"]


def test_names_parse_and_errors_name_the_fix():
    assert [s.name for s in resolve_metrics(None)] == ["wll", "auc"]
    assert [s.name for s in resolve_metrics("auc, sens@spec=0.90")] == ["auc", "sens@spec=0.9"]
    assert [s.name for s in resolve_metrics(["ppv"], thresholds=[0.2, 0.6])] == [
        "ppv@t=0.2",
        "ppv@t=0.6",
    ]
    assert get_metric("npv@t=0.5").params == {"threshold": 0.5}
    assert [s.name for s in resolve_metrics(["auc", "auc"])] == ["auc"]
    with pytest.raises(InputError, match=r"Unknown metric 'foo'; the metrics are wll, auc, "):
        get_metric("foo")
    with pytest.raises(InputError, match=r"needs its level: write sens@spec=LEVEL"):
        get_metric("sens@spec")
    with pytest.raises(InputError, match=r"level of metric 'sens@spec' must be a number strictly"):
        get_metric("sens@spec=1")
    with pytest.raises(InputError, match=r"threshold of metric 'ppv@t' must be a number in"):
        get_metric("ppv@t=abc")
    with pytest.raises(InputError, match=r"Metric 'auc' takes no parameter; got 'auc=3'"):
        get_metric("auc=3")
    with pytest.raises(InputError, match=r"A metric is named by a string; got 5"):
        resolve_metrics([5])  # type: ignore[list-item]
    with pytest.raises(InputError, match="metrics is empty"):
        resolve_metrics([])


def test_every_spec_is_complete_and_its_point_function_warns_with_the_reason():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    s = np.round(rng.random(50), 1)
    for name in ("wll", "auc", "sens@spec=0.9", "spec@sens=0.8", "ppv@t=0.5", "npv@t=0.5",
                 "cal_slope", "citl"):  # fmt: skip
        spec = get_metric(name)
        assert spec.label and spec.short and spec.description, name
        assert (spec.higher_is_better is None) == (spec.ideal is not None), name
        value = spec(y, s)
        kernel = spec.kernel(y.astype(np.int8), s.astype(float))
        assert value == kernel(np.ones(50)), name
    with pytest.warns(UndefinedMetricWarning, match="PPV at threshold 0.99 is undefined"):
        assert np.isnan(get_metric("ppv@t=0.99")(y, s * 0.9))
    only = "Only positives .* Sensitivity at specificity 0.9 is not"
    with pytest.warns(UndefinedMetricWarning, match=only):
        assert np.isnan(get_metric("sens@spec=0.9")([1, 1], [0.2, 0.3]))


def brute(name: str, y: np.ndarray, s: np.ndarray) -> float:
    """Independent references (sklearn, masks, scipy solvers) on one resample's rows."""
    if y.min() == y.max():
        return np.nan
    if name == "auc":
        return float(roc_auc_score(y, s))
    if name.startswith(("sens@spec", "spec@sens")):
        level = float(name.split("=")[1])
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        if name.startswith("sens"):
            return float(tpr[fpr <= 1 - level + 1e-12].max())
        return float((1 - fpr)[tpr >= level - 1e-12].max())
    if name.startswith("ppv"):
        t = float(name.split("=")[1])
        pred = (s >= t).astype(int)
        return np.nan if pred.sum() == 0 else float(precision_score(y, pred))
    if name.startswith("npv"):
        t = float(name.split("=")[1])
        below = s < t
        return np.nan if below.sum() == 0 else float((y[below] == 0).mean())
    if name == "citl":
        return citl_brentq(y, s, np.ones(y.size))
    if name == "cal_slope":
        return slope_trust_exact(y, s, np.ones(y.size))
    raise AssertionError(name)


NAMES = ["auc", "sens@spec=0.9", "spec@sens=0.75", "ppv@t=0.5", "npv@t=0.3", "citl", "cal_slope"]


@pytest.mark.parametrize("n", [40, 2600])  # batched (small parts) and one resample at a time
def test_each_metric_and_its_paired_delta_equal_brute_force_on_replayed_resamples(n):
    rng = np.random.default_rng(n)
    y = (rng.random(n) < 0.3).astype(np.int8)
    y[:2] = [0, 1]
    a = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0.01, 0.99), 2)
    b = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.01, 0.99), 2)
    options = BootstrapOptions.make(n_boot=30, seed=4)
    specs = resolve_metrics(NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        part = evaluate_part(
            y, {"a": a, "b": b}, options=options, metrics=specs, baseline="a", keep=True
        )
    indices = list(se.bootstrap_indices(y, n_boot=30, seed=4))
    for name in NAMES:
        tol = SOLVER if name in ("citl", "cal_slope") else 1e-12
        for model, s in (("a", a), ("b", b)):
            result = part.metrics[name, model]
            assert result.estimate == pytest.approx(brute(name, y, s), rel=tol, abs=tol), name
            reference = np.array([brute(name, y[i], s[i]) for i in indices])
            np.testing.assert_allclose(result.distribution, reference, rtol=tol, atol=tol)
        mine, base = part.metrics[name, "b"].distribution, part.metrics[name, "a"].distribution
        delta = part.deltas[name, "b"]
        diff = mine - base
        lo, hi = np.quantile(diff[~np.isnan(diff)], [0.025, 0.975])
        assert (delta.ci_low, delta.ci_high) == pytest.approx((lo, hi), rel=1e-12, abs=1e-12)
        est = part.metrics[name, "b"].estimate - part.metrics[name, "a"].estimate
        assert delta.delta == pytest.approx(est, rel=1e-12, abs=1e-12)


def test_evaluate_gives_every_metric_per_segment_in_tables_scorecard_and_report(tmp_path):
    p = make_predictions(scale=0.05, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        ev = se.evaluate(
            p,
            segment_by="source",
            baseline="single_segment",
            metrics=["sens@spec=0.9", "ppv"],
            thresholds=[0.3, 0.7],
            n_boot=20,
        )
    names = ["sens@spec=0.9", "ppv@t=0.3", "ppv@t=0.7", "auc"]  # AUC is always evaluated
    assert ev.settings["metrics"] == names
    for name in names:
        assert {name, f"{name}_ci_low", f"{name}_ci_high"} <= set(ev.metrics.columns)
    assert "wll" not in ev.metrics.columns
    # segment rows equal segment_table on that segment alone, from the same seed
    table = se.segment_table(
        p[p.model == "periodic"].sort_values("image_id").label,
        p[p.model == "periodic"].sort_values("image_id").score,
        p[p.model == "periodic"].sort_values("image_id").source.to_numpy(),
        n_boot=20,
        metrics=names,
        thresholds=[0.3, 0.7],
    )
    mine = ev.metrics[ev.metrics.model == "periodic"].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine.drop(columns="model"), table, check_dtype=False)
    assert set(ev.deltas.metric) == set(names)
    assert len(ev.deltas) == len(names) * 2 * len(ev.segments)
    card = ev.scorecard.set_index("model")
    assert card.loc["periodic", "sens@spec=0.9"] == mine.loc[0, "sens@spec=0.9"]
    assert "delta_ppv@t=0.7" in card.columns and "wll" not in card.columns
    assert "verdict_sens@spec=0.9" in card.columns
    files = ev.write(tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "Sens@Spec 0.9" in html and "PPV@0.7" in html and "Other metrics against" in html
    assert tmp_path / "r_deltas.csv" in files


def test_an_undefined_metric_is_nan_with_its_reason_in_the_note():
    p = make_predictions(scale=0.05, seed=1)
    with pytest.warns(UndefinedMetricWarning, match=r"Segment S1: .*PPV at threshold 1 is"):
        ev = se.evaluate(p, segment_by="source", metrics=["auc", "ppv@t=1"], n_boot=10)
    row = ev.metrics[(ev.metrics.segment == "S1")].iloc[0]
    assert np.isnan(row["ppv@t=1"]) and not np.isnan(row["auc"])
    assert "PPV at threshold 1 is undefined" in row.note


def test_a_new_metric_is_one_kernel_and_one_registry_entry():
    """The README's worked example: Youden's J at a threshold."""

    class YoudenKernel:
        def __init__(self, y, s, *, threshold):
            self.pos = (y == 1).astype(float)
            self.hit = (s >= threshold).astype(float)

        def __call__(self, w, total=None):
            return self.batch(w[None, :], np.array([w.sum()]))[0]

        def batch(self, w, totals):
            w_pos = w @ self.pos
            w_neg = totals - w_pos
            with np.errstate(divide="ignore", invalid="ignore"):
                tpr = (w @ (self.pos * self.hit)) / w_pos
                fpr = (w @ ((1 - self.pos) * self.hit)) / w_neg
            return tpr - fpr

    register(
        MetricFamily(
            "youden@t",
            lambda t: MetricSpec(
                name=f"youden@t={t:g}",
                label=f"Youden's J at threshold {t:g}",
                short=f"J@{t:g}",
                build=lambda y, s, eps: YoudenKernel(y, s, threshold=t),
                higher_is_better=True,
                params={"threshold": t},
            ),
            parameter="threshold",
        )
    )
    try:
        p = make_predictions(scale=0.05, seed=2)
        ev = se.evaluate(p, segment_by=None, metrics="youden@t=0.5", baseline="periodic", n_boot=15)
        glob = ev.metrics.set_index("model")["youden@t=0.5"]
        for model, g in p.groupby("model"):
            tpr = (g.score[g.label == 1] >= 0.5).mean()
            fpr = (g.score[g.label == 0] >= 0.5).mean()
            assert glob[model] == pytest.approx(tpr - fpr, abs=1e-12)
        assert "youden@t=0.5" in set(ev.deltas.metric)
    finally:
        del registry.REGISTRY["youden@t"]


def test_cli_takes_metrics_and_refuses_unknown_ones_in_one_line(tmp_path):
    preds = tmp_path / "p.parquet"
    make_predictions(scale=0.05).to_parquet(preds)
    out = tmp_path / "r.html"
    cmd = [sys.executable, "-m", "segeval.cli", "report", "--preds", str(preds)]
    done = subprocess.run(
        [*cmd, "--segment-by", "source", "--metrics", "auc,spec@sens=0.8,npv", "--n-boot", "10",
         "--baseline", "periodic", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["settings"]["metrics"][:2] == ["auc", "spec@sens=0.8"]
    assert "npv@t=0.8" in data["metrics"][0]
    bad = subprocess.run(
        [*cmd, "--metrics", "sens@spec=2", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "segeval report: error: The level of metric 'sens@spec' must be a number strictly between "
        "0 and 1; got '2'."
    ]


def test_the_progress_bar_counts_every_bootstrap_of_the_engine(tmp_path):
    """Leakage (on the evaluated set and on each run's validation set) is drawn inside the
    engine's parts, so the progress reaches its total exactly once per part."""
    p = make_predictions(scale=0.05, seed=2)
    run = tmp_path / "periodic"
    (run / "preds").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        '{"step": 1, "segment": "__global__", "wll": 0.5, "auc": 0.7}\n'
    )
    p[p.model == "periodic"].to_parquet(run / "preds" / "val.parquet")
    from conftest import run_inputs

    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        ev = se.evaluate(
            p,
            segment_by="source",
            baseline="single_segment",
            n_boot=12,
            progress=lambda done, total: seen.append((done, total)),
            **run_inputs([run]),
        )
    n_parts = 1 + len(ev.segments[1:]) + 1  # the whole set, each segment, one validation set
    assert {total for _, total in seen} == {12 * n_parts}
    assert sum(done for done, _ in seen) == 12 * n_parts
    assert set(ev.leakage.on) == {"evaluated set", "validation"}
