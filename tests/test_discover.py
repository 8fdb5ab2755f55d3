"""Slice discovery: the slice kernel against brute force, the lattice, the simultaneous
inference, a planted weak slice found, the API and CLI, and a side-by-side with sliceline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from segeval import InputError
from segeval._slice_kernels import FamilyCodes, SliceAUCKernel
from segeval.discover import discover, parse_columns
from segeval.engine import evaluate_part, resample_indices
from segeval.resampling import BootstrapOptions
from segeval.segments import SegmentColumn
from segeval.slices import benjamini, build_lattice, max_t_stepdown

TOL = 1e-12  # sums of at most a few thousand integer-weighted pairs: float64 rounding only


def planted(seed: int, n: int = 4000, weak: float = 0.2) -> pd.DataFrame:
    """Predictions with metadata site x view x age; the model is weak on (site=B, view=MLO)."""
    rng = np.random.default_rng(seed)
    site = rng.choice(["A", "B", "C"], n)
    view = rng.choice(["CC", "MLO"], n)
    age = rng.uniform(40, 80, n)
    y = rng.integers(0, 2, n)
    bad = (site == "B") & (view == "MLO")
    signal = np.where(bad, weak, 2.0) * (y - 0.5)
    score = 1 / (1 + np.exp(-(signal + rng.normal(0, 1, n))))
    return pd.DataFrame(
        {
            "image_id": np.arange(n),
            "patient_id": np.arange(n) // 2,
            "label": y,
            "score": score,
            "site": site,
            "view": view,
            "age": age,
        }
    )


def test_kernel_matches_sklearn_inside_and_outside_every_slice(rng):
    n = 300
    y = (rng.random(n) < 0.35).astype(np.int8)
    s = np.round(rng.random(n) + 0.3 * y, 1)  # many ties
    a, b = rng.integers(0, 3, n), rng.integers(0, 2, n)
    families = [FamilyCodes(np.where(a == 2, 2, a), 2), FamilyCodes(a * 2 + b, 6)]
    kernel = SliceAUCKernel(y, s, families)
    masks = [a == 0, a == 1] + [(a * 2 + b) == c for c in range(6)]
    for w in (np.ones(n), rng.integers(0, 3, n).astype(float), rng.random(n)):
        got = kernel(w, float(w.sum()))
        inside = [roc_auc_score(y[m], s[m], sample_weight=w[m]) for m in masks]
        outside = [roc_auc_score(y[~m], s[~m], sample_weight=w[~m]) for m in masks]
        np.testing.assert_allclose(got, inside + outside, atol=TOL)


def exact_auc(y, s, w, m):
    """AUC of the rows in ``m`` for integer weights, from the exact pair count: the correctly
    rounded quotient of 2U by 2 W+ W- (both exact integers), NaN without both classes."""
    pos, neg = m & (y == 1), m & (y == 0)
    wp, wn = w[pos].astype(np.int64), w[neg].astype(np.int64)
    order = np.sign(s[pos][:, None] - s[neg][None, :]) + 1  # 2 above, 1 tied, 0 below
    twice_u = int((wp[:, None] * wn[None, :] * order).sum())
    pairs = int(wp.sum()) * int(wn.sum())
    return float("nan") if pairs == 0 else float(twice_u) / float(2 * pairs)


def test_kernel_is_exact_for_integer_weights(rng):
    """Bootstrap counts are integers: every sum in the kernel is then an exact integer or half
    integer, so each AUC must be the correctly rounded quotient of the exact pair counts, bit
    for bit, whatever the order of summation (the kernel before the per-cell sums, commit
    a5379d7, passes this test too: the two agree bit for bit on every resample)."""
    n = 400
    y = (rng.random(n) < 0.4).astype(np.int8)
    s = np.round(rng.random(n) + 0.4 * y, 1)  # many ties, within and across slices
    a, b, c = rng.integers(0, 3, n), rng.integers(0, 2, n), rng.integers(0, 4, n)
    families = [
        FamilyCodes(np.where(a == 2, 2, a), 2),  # a sink: rows of a=2 are in no slice
        FamilyCodes(b, 2),
        FamilyCodes(a * 2 + b, 6),
        FamilyCodes(np.where(c == 3, 6, a * 2 + (c == 1)), 6),  # a sink of its own
    ]
    kernel = SliceAUCKernel(y, s, families)
    masks = [fam.codes == code for fam in families for code in range(fam.k)]
    weights = [np.ones(n), rng.integers(0, 4, n), rng.poisson(1.0, n)]
    sparse = rng.poisson(0.05, n)  # most rows out: some slices lose a class
    weights.append(sparse)
    for w in weights:
        w = w.astype(np.float64)
        got = kernel(w, float(w.sum()))
        want = [exact_auc(y, s, w, m) for m in masks] + [exact_auc(y, s, w, ~m) for m in masks]
        np.testing.assert_array_equal(got, want)
    assert np.isnan(kernel(sparse.astype(np.float64))).any()


def test_kernel_on_the_engine_resamples_equals_brute_force():
    preds = planted(1, n=600)
    y = preds.label.to_numpy(np.int8)
    s = preds.score.to_numpy()
    lattice = build_lattice(preds, parse_columns("site,view"), y, order=2, min_support=10)
    options = BootstrapOptions.make(n_boot=5, seed=3)
    part = evaluate_part(
        y, {}, options=options, metrics=(), extra={"k": SliceAUCKernel(y, s, lattice.families)}
    )
    assert part.extra is not None
    members = [lattice.member(i) for i in range(len(lattice.slices))]
    for b, idx in enumerate(resample_indices(y, options=options)):
        inside = [roc_auc_score(y[idx][m[idx]], s[idx][m[idx]]) for m in members]
        np.testing.assert_allclose(part.extra.of("k")[b, : len(members)], inside, atol=TOL)


def test_lattice_counts_support_and_duplicates():
    frame = pd.DataFrame(
        {"site": ["A"] * 60 + ["B"] * 60, "scanner": ["X"] * 60 + ["Y"] * 60, "v": [0, 1] * 60}
    )
    y = np.tile([0, 1, 1, 0], 30).astype(np.int8)
    cols = [SegmentColumn("site"), SegmentColumn("scanner"), SegmentColumn("v")]
    lattice = build_lattice(frame, cols, y, order=2, min_support=10)
    # scanner repeats site row for row: kept once, under site.
    assert "scanner=X" not in set(lattice.slices.slice)
    assert lattice.n_duplicate >= 2
    assert (lattice.slices[["n_pos", "n_neg"]] >= 10).all().all()


def test_binned_columns_take_fixed_cuts_in_both_spellings():
    a = parse_columns("site,age=0,50,60,120")
    b = parse_columns("site,age:0,50,60,120")
    assert a == b
    assert a[1].edges == (0.0, 50.0, 60.0, 120.0)


def test_max_t_is_monotone_and_bh_matches_statsmodels_formula(rng):
    z_null = rng.standard_normal((999, 5))
    z = np.array([5.0, 1.0, 3.0, -1.0, np.nan])
    p = max_t_stepdown(z, z_null)
    assert np.isnan(p[4])
    assert p[0] <= p[2] <= p[1] <= p[3]
    assert p[0] == pytest.approx(1 / 1000)
    q = benjamini(np.array([0.001, 0.02, 0.03, 0.5]))
    np.testing.assert_allclose(q, [0.004, 0.04, 0.04, 0.5])
    assert (benjamini(np.array([0.001, 0.02]), dependent=True) > benjamini([0.001, 0.02])).all()


def test_planted_weak_slice_of_order_two_is_the_one_reported():
    found = discover(planted(0), "site,view,age:50,60,70", n_boot=300, cluster="patient_id")
    assert found.reported.slice.tolist()[0] == "site=B & view=MLO"
    top = found.reported.iloc[0]
    assert top.stat < 0 and top.stat_ci_high < 0 and top.p_adjusted < 0.05
    assert {"leakage_benign", "leakage_malignant_ci_high"} <= set(found.reported.columns)
    # Its parents are flagged too but explained by it (minimal description).
    parents = found.slices.set_index("slice").loc[["site=B", "view=MLO"]]
    assert (~parents.reported).all()
    assert found.settings["min_support"] == 20 and found.settings["n_tested"] > 30


def test_baseline_mode_tests_the_paired_delta_inside_slices():
    preds = planted(2)
    base = preds.assign(model="base", score=np.clip(preds.score + 0.0, 0, 1))
    weak = preds.assign(model="new")
    good = base.label == 1
    # The baseline is good everywhere: 'new' is worse than it only where 'new' is weak.
    base.loc[:, "score"] = np.where(good, 0.8, 0.2) * 0.5 + 0.5 * base.score
    found = discover(
        pd.concat([base, weak]), "site,view", model="new", baseline="base", order=2, n_boot=200
    )
    assert found.settings["estimand"].startswith("AUC(model, slice) - AUC(baseline")
    assert "auc_baseline" in found.slices.columns
    assert "site=B & view=MLO" in set(found.reported.slice)


def test_same_seed_same_table_and_fdr_options():
    preds = planted(3, n=1500)
    a = discover(preds, "site,view", order=2, n_boot=100, seed=7, leakage=False)
    b = discover(preds, "site,view", order=2, n_boot=100, seed=7, leakage=False)
    pd.testing.assert_frame_equal(a.slices, b.slices)
    for method in ("bh", "by"):
        c = discover(preds, "site,view", order=2, n_boot=100, method=method, leakage=False)
        assert c.settings["method"] == method
    m = discover(preds, "site,view", order=2, n_boot=100, margin=0.4, leakage=False)
    assert m.slices.z.max() < a.slices.z.max()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"columns": "nope"}, "metadata column"),
        ({"columns": "site", "method": "holm"}, "method must be one of"),
        ({"columns": "site", "order": 9}, "order must be between"),
        ({"columns": "site", "model": "x"}, "model='x' is not in the predictions"),
        ({"columns": "site", "alpha": 2}, "alpha must lie"),
    ],
)
def test_bad_input_is_one_clear_sentence(kwargs, match):
    with pytest.raises(InputError, match=match):
        discover(planted(0, n=200), n_boot=10, **kwargs)


def test_cli_writes_the_table_and_exits_2_on_bad_input(tmp_path):
    path = tmp_path / "preds.csv"
    planted(0, n=2000).to_csv(path, index=False)
    out = tmp_path / "slices.csv"
    cmd = [sys.executable, "-m", "segeval.cli", "discover", "--preds", str(path)]
    done = subprocess.run(
        [*cmd, "--columns", "site,view", "--order", "2", "--n-boot", "100", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert table.loc[table["rank"] == 1, "slice"].item() == "site=B & view=MLO"
    assert "site=B & view=MLO" in done.stdout
    bad = subprocess.run([*cmd, "--columns", "nope"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "nope" in bad.stderr


def test_side_by_side_with_sliceline():
    """Which slices each finds on the same data: sliceline ranks slices by mean per-row error
    (here the log loss) and size, segeval by AUC with max-T. Both should find the planted
    slice; sliceline needs a per-row loss and gives neither a CI nor an error rate."""
    sliceline = pytest.importorskip("sliceline.slicefinder")
    preds = planted(4)
    p = np.clip(preds.score.to_numpy(), 1e-6, 1 - 1e-6)
    loss = -(preds.label * np.log(p) + (1 - preds.label) * np.log(1 - p))
    finder = sliceline.Slicefinder(alpha=0.95, k=3, max_l=2, min_sup=100, verbose=False)
    finder.fit(preds[["site", "view"]].to_numpy(), loss.to_numpy())
    theirs = [
        " & ".join(f"{c}={v}" for c, v in zip(["site", "view"], row, strict=True) if v is not None)
        for row in finder.top_slices_
    ]
    ours = discover(preds, "site,view", order=2, n_boot=200).reported.slice.tolist()
    assert ours[0] == "site=B & view=MLO"
    assert "site=B & view=MLO" in theirs


def test_report_has_a_discovery_section_with_discover(tmp_path):
    from segeval import evaluate

    preds = planted(0, n=2000)
    ev = evaluate(preds, segment_by="site", n_boot=100, discover="site,view")
    assert ev.discovery.slice.tolist() == ["site=B & view=MLO"]
    assert ev.settings["discovery"]["order"] == 3
    paths = ev.write(tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert 'id="discovery"' in html and "site=B &amp; view=MLO" in html
    assert tmp_path / "report_discovery.csv" in paths


def test_report_discovery_honours_the_baseline(tmp_path):
    """With a baseline, the report searches each other model's slices for the paired ΔAUC
    against it (as `segeval discover --baseline`), not the slice against its complement."""
    from segeval import evaluate

    preds = planted(2, n=2000)
    base = preds.assign(model="base")
    base["score"] = np.where(base.label == 1, 0.8, 0.2) * 0.5 + 0.5 * base.score
    both = pd.concat([base, preds.assign(model="new")])
    ev = evaluate(both, segment_by="site", baseline="base", n_boot=100, discover="site,view")
    settings = ev.settings["discovery"]
    assert settings["baseline"] == "base"
    assert settings["estimand"] == "AUC(model, slice) - AUC(baseline, slice)"
    assert set(ev.discovery.model) == {"new"}  # the baseline is not tested against itself
    assert "site=B & view=MLO" in set(ev.discovery.slice)
    assert "auc_baseline" in ev.discovery.columns
    ev.write(tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "worse than the baseline, base" in html and "AUC base" in html
