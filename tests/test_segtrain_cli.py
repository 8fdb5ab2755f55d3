"""segtrain plan: the per-DS table and JSON, and bad input as one sentence with exit code 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from segtrain.cli import main


@pytest.fixture
def manifest(tmp_path):
    df = pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(12)],
            "source": ["S1"] * 6 + ["S2"] * 6,
            "maker": ["Ma", "Mb"] * 6,
            "label": [1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0],
        }
    )
    path = tmp_path / "m.csv"
    df.to_csv(path, index=False)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_json(capsys, manifest):
    code, out, _ = run(
        capsys, "plan", "--manifest", manifest, "--segment-by", "source,maker", "--json"
    )
    assert code == 0
    data = json.loads(out)
    periodic = [r for r in data["rows"] if r["strategy"] == "periodic"]
    assert [r["segment"] for r in periodic] == ["(S1, Ma)", "(S1, Mb)", "(S2, Ma)", "(S2, Mb)"]
    assert [r["n_min"] for r in periodic] == [1, 1, 1, 0]
    assert [r["proportion"] for r in periodic] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])
    assert periodic[3]["left_out"] is True
    assert data["warnings"] == [
        "Segment(s) with one label only are left out of the sampling: (S2, Mb)."
    ]
    for strategy in ("balanced-segments", "balanced-labels"):
        share = sum(r["proportion"] for r in data["rows"] if r["strategy"] == strategy)
        assert share == pytest.approx(1.0)
    draws = periodic[0]["draws_per_1000_batches"]
    assert draws == pytest.approx(1000 * 24 / 3)


def test_plan_table_and_single_segment(capsys, manifest):
    code, out, err = run(
        capsys,
        "plan",
        "--manifest",
        manifest,
        "--segment-by",
        "source,maker",
        "--segment",
        "(S1, Ma)",
        "--batch-size",
        "10",
    )
    assert code == 0
    assert "single-segment" in out and "draws/1000" in out
    assert "left out of the sampling: (S2, Mb)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--manifest", "nope.csv", "--segment-by", "source"],
            "The manifest 'nope.csv' does not exist.",
        ),
        (["--manifest", "{m}", "--segment-by", "hospital"], "Segment column 'hospital' not found"),
        (
            ["--manifest", "{m}", "--segment-by", "source", "--segment", "S9"],
            "strategy 'single-segment' needs segment= one of S1, S2; got 'S9'.",
        ),
    ],
)
def test_bad_input(capsys, manifest, argv, message):
    code, _, err = run(capsys, "plan", *[a.replace("{m}", str(manifest)) for a in argv])
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_labels_and_missing_label_column(capsys, tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"source": ["a", "b"], "label": [0, 3]}).to_csv(path, index=False)
    code, _, err = run(capsys, "plan", "--manifest", path, "--segment-by", "source")
    assert code == 2 and "Column 'label' of" in err and "must contain only 0 and 1; got 3" in err
    pd.DataFrame({"source": ["a", "b"]}).to_csv(path, index=False)
    code, _, err = run(capsys, "plan", "--manifest", path, "--segment-by", "source")
    assert code == 2 and "lacks the required column(s) label" in err
