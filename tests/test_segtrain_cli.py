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
    for strategy in ("balanced-segments", "balanced-labels", "square-root"):
        share = sum(r["proportion"] for r in data["rows"] if r["strategy"] == strategy)
        assert share == pytest.approx(1.0)
    shown = list(dict.fromkeys(r["strategy"] for r in data["rows"]))
    assert shown == ["periodic", "balanced-segments", "balanced-labels", "square-root"]
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
    assert "single-segment" in out and "square-root" in out and "draws/1000" in out
    header = out.splitlines()[0].split()
    assert header[:2] == ["DS", "periodic"] and header.count("square-root") == 1
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
            "--segment: no segment S9; known: S1, S2.",
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


def test_synth_and_prepare(capsys, tmp_path):
    code, out, err = run(
        capsys,
        "synth",
        "--out",
        tmp_path / "raw",
        "--scale",
        "0.0005",
        "--segments",
        "S1:Ma,S2:Mb",
        "--height",
        "96",
        "--width",
        "72",
        "--compress",
        "rle",
    )
    assert code == 0, err
    assert "wrote 23 images" in out  # S1:Ma 7 + 4 (scaled), S2:Mb 10 + 2 (at least 2)
    code, out, err = run(
        capsys,
        "prepare",
        "--manifest",
        tmp_path / "raw" / "manifest.csv",
        "--out",
        tmp_path / "cache",
        "--height",
        "192",
        "--width",
        "190",
        "--workers",
        "2",
    )
    assert code == 0, err
    prepared = pd.read_csv(tmp_path / "cache" / "manifest.csv")
    assert len(prepared) == 23 and prepared.background.notna().all()


def test_synth_and_prepare_bad_input(capsys, tmp_path):
    code, _, err = run(capsys, "synth", "--out", tmp_path, "--segments", "S1-Ma")
    assert code == 2 and "--segments must look like S1:Ma,S2:Mb; got 'S1-Ma'." in err
    code, _, err = run(capsys, "synth", "--out", tmp_path, "--format", "png", "--compress", "rle")
    assert code == 2 and "compress must be 'j2k' or 'rle' with DICOM images" in err
    manifest = tmp_path / "m.csv"
    pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "patient_id": ["p", "q"],
            "path": ["a.dcm", "b.dcm"],
            "label": [0, 1],
        }
    ).to_csv(manifest, index=False)
    code, _, err = run(capsys, "prepare", "--manifest", manifest, "--out", tmp_path / "c")
    assert code == 2 and "2 image file(s) listed in" in err and "a.dcm, b.dcm." in err
    (tmp_path / "a.dcm").write_bytes(b"garbage")
    (tmp_path / "b.dcm").write_bytes(b"garbage")
    code, _, err = run(
        capsys, "prepare", "--manifest", manifest, "--out", tmp_path / "c", "--workers", "1"
    )
    assert code == 2 and f"The DICOM file '{tmp_path / 'a.dcm'}' cannot be decoded" in err


def test_a_system_error_is_one_line_and_code_1_not_bad_input(capsys, manifest, monkeypatch):
    import segtrain.sampling

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", "/somewhere")

    monkeypatch.setattr(segtrain.sampling, "plan_table", disk_full)
    code, _, err = run(capsys, "plan", "--manifest", manifest, "--segment-by", "source")
    assert code == 1
    assert err == (
        "segtrain plan: system error: [Errno 28] No space left on device: '/somewhere'\n"
    )
