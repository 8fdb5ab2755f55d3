"""The segeval command: end to end, and every bad input as one sentence with exit code 2."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segeval.cli import main
from segeval.synthetic import make_predictions


@pytest.fixture(scope="module")
def preds_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("preds") / "preds.parquet"
    make_predictions(scale=0.1, seed=1).to_parquet(path)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_end_to_end(tmp_path, preds_file, capsys):
    out = tmp_path / "r" / "report.html"
    code, stdout, _ = run(
        capsys,
        "report",
        "--preds",
        preds_file,
        "--segment-by",
        "source,manufacturer",
        "--baseline",
        "single_segment",
        "--n-boot",
        "50",
        "--out",
        out,
    )
    assert code == 0
    assert f"wrote {out}" in stdout
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["baselines"].values()) == {"single_segment"}
    assert data["segments"][0] == "__global__"
    metrics = pd.read_csv(tmp_path / "r" / "report_metrics.csv")
    assert len(metrics) == 3 * 6
    html = out.read_text()
    # Every AUC of the JSON is printed in the page, to 3 decimals.
    for row in data["metrics"]:
        assert f"<td>{row['auc']:.3f}</td>" in html
    for row in data["comparisons"]:
        assert f"{row['delta_auc']:+.3f}".replace("-", "−") + '<span class="ci">(' in html
    # Provenance: the command line, and the predictions file with its sha256 and row count.
    prov = data["provenance"]
    assert prov["command"].startswith("segeval report --preds ") and prov["command"] in html
    (source,) = prov["inputs"]
    expected = hashlib.sha256(Path(preds_file).read_bytes()).hexdigest()
    assert source["sha256"] == expected and source["rows"] == len(pd.read_parquet(preds_file))


def test_report_without_segment_by_names_the_segment_like_columns(tmp_path, preds_file, capsys):
    """Issue 23: the mission's own command on a file with segment columns."""
    out = tmp_path / "report.html"
    code, _, err = run(capsys, "report", "--preds", preds_file, "--n-boot", 5, "--out", out)
    assert code == 0
    (line,) = [x for x in err.splitlines() if "look like data segments" in x]
    assert "source, manufacturer" in line and "--segment-by source,manufacturer" in line
    page = out.read_text()
    first_screen = page[: page.index('<table class="scorecard"')]
    assert "segment bias is <b>not judged</b>" in first_screen
    assert "<code>--segment-by source,manufacturer</code>" in first_screen


def test_console_script_runs(tmp_path, preds_file):
    out = tmp_path / "report.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "segeval.cli",
            "report",
            "--preds",
            str(preds_file),
            "--n-boot",
            "20",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.exists()


def test_synth_preds(tmp_path, capsys):
    code, stdout, _ = run(capsys, "synth-preds", "--out", tmp_path / "p.csv", "--scale", "0.05")
    assert code == 0 and "3 models" in stdout
    assert set(pd.read_csv(tmp_path / "p.csv").columns) >= {"image_id", "model", "label", "score"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preds", "missing.parquet"], "The predictions file 'missing.parquet' does not exist."),
        (
            ["--preds", "{p}", "--baseline", "nobody"],
            "Unknown baseline 'nobody'; the models are bal_labels, periodic, single_segment.",
        ),
        (
            ["--preds", "{p}", "--segment-by", "hospital"],
            "The segment column 'hospital' is not in the predictions; available columns: "
            "image_id, ",
        ),
        (
            ["--preds", "{p}", "--cluster", "visit"],
            "The cluster column 'visit' is not in the predictions; available columns: image_id, ",
        ),
        (
            ["--preds", "{p}", "--out", "report.pdf"],
            "--out must name an .html file; got 'report.pdf'.",
        ),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(capsys, preds_file, argv, message):
    argv = [a.replace("{p}", str(preds_file)) for a in argv]
    code, _, err = run(capsys, "report", *argv)
    assert code == 2
    assert err.startswith(f"segeval report: error: {message}")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n-boot", "0"], "argument --n-boot: must be an integer >= 1; got '0'"),
        (["--ci", "95"], "argument --ci: must be a level strictly between 0 and 1; got '95'"),
        (["--thresholds", "0.2,x"], "argument --thresholds: must be numbers separated by commas"),
    ],
)
def test_bad_options_exit_2(capsys, preds_file, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["report", "--preds", str(preds_file), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def bad_preds_files(tmp_path):
    """(file(s), expected start of the error) for every bad predictions input of the issue."""
    good = make_predictions(scale=0.05, seed=2)
    cases = []

    def save(name, frame):
        path = tmp_path / name
        (frame.to_csv(path, index=False) if name.endswith(".csv") else frame.to_parquet(path))
        return path

    cases.append(([tmp_path / "absent.parquet"], "The predictions file"))
    notes = tmp_path / "preds.txt.gz"
    notes.write_bytes(b"\x1f\x8b garbage")
    cases.append(([notes], "The predictions file"))
    cases.append(([save("nolabel.parquet", good.drop(columns="label"))], "The predictions file"))
    for value, start in (
        (np.nan, "Column 'score'"),
        (np.inf, "Column 'score'"),
        (1.5, "Column 'score'"),
    ):
        bad = good.copy()
        bad.loc[3, "score"] = value
        cases.append(([save(f"score{len(cases)}.parquet", bad)], start))
    bad = good.copy()
    bad["label"] = bad["label"].astype(object)
    bad.loc[0, "label"] = "yes"
    cases.append(([save("label.csv", bad)], "Column 'label'"))
    cases.append(
        ([save("dup.parquet", pd.concat([good, good.iloc[:1]]))], "1 duplicate (image_id, model)")
    )
    other = good[good.model == "periodic"].assign(model="extra").iloc[5:]
    cases.append(([save("a.parquet", good), save("b.parquet", other)], "Models "))
    return cases


def test_every_bad_predictions_input_exits_2_with_one_sentence(tmp_path, capsys):
    for files, start in bad_preds_files(tmp_path):
        argv = [
            "report",
            *[arg for f in files for arg in ("--preds", str(f))],
            "--out",
            str(tmp_path / "r.html"),
        ]
        code, _, err = run(capsys, *argv)
        assert code == 2, (files, err)
        assert err.startswith(f"segeval report: error: {start}"), err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not (tmp_path / "r.html").exists()


def test_per_segment_baseline_and_runs(tmp_path, preds_file, capsys):
    run_dir = tmp_path / "run1"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(
        '{"step": 10, "segment": "__global__", "wll": 0.6, "auc": 0.7}\n'
    )
    out = tmp_path / "r.html"
    code, _, err = run(
        capsys,
        "report",
        "--preds",
        preds_file,
        "--segment-by",
        "source",
        "--baseline",
        "single_segment",
        "--baseline",
        "S2=periodic",
        "--run",
        run_dir,
        "--n-boot",
        "20",
        "--out",
        out,
    )
    assert code == 0, err
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["baselines"]["S2"] == "periodic" and data["baselines"]["S1"] == "single_segment"
    assert data["training"][0]["run"] == "run1"
    assert 'id="training"' in out.read_text()
    # The CLI reads the run folders and records what it read (evaluate() takes frames).
    (record,) = [f for f in data["provenance"]["inputs"] if f["role"] == "training run"]
    assert record["rows"] == 1 and len(record["sha256"]) == 64
    assert record["sha256"] in out.read_text()
    code, _, err = run(capsys, "report", "--preds", preds_file, "--baseline", "=x", "--out", out)
    assert code == 2 and "--baseline must be MODEL or SEGMENT=MODEL; got '=x'." in err


def test_one_flag_takes_several_files(tmp_path, preds_file, capsys):
    """`--preds a b` as a shell glob gives it, and `--run r1 r2`, same as repeating the flag."""
    import pandas as pd

    frame = pd.read_parquet(preds_file)
    files = []
    for model in ("single_segment", "periodic"):
        files.append(tmp_path / f"{model}.parquet")
        frame[frame.model == model].to_parquet(files[-1])
    runs = []
    for name in ("r1", "r2"):
        runs.append(tmp_path / name)
        runs[-1].mkdir()
        (runs[-1] / "metrics.jsonl").write_text(
            '{"step": 10, "segment": "__global__", "wll": 0.6, "auc": 0.7}\n'
        )
    out = tmp_path / "r.html"
    code, _, err = run(
        capsys, "report", "--preds", *files, "--run", *runs, "--n-boot", "20", "--out", out
    )
    assert code == 0, err
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["models"] == ["periodic", "single_segment"]
    assert sorted({r["run"] for r in data["training"]}) == ["r1", "r2"]


def test_audit_formats(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    make_predictions(scale=0.1).query("model == 'periodic'").to_csv(manifest, index=False)
    code, out, _ = run(
        capsys, "audit", "--manifest", manifest, "--segment-by", "source,manufacturer"
    )
    assert code == 0
    assert "(S1, Ma)" in out and "Prevalence differs across segments" in out
    code, out, _ = run(
        capsys, "audit", "--manifest", manifest, "--segment-by", "source", "--format", "json"
    )
    data = json.loads(out)
    assert [r["segment"] for r in data["table"]] == ["S1", "S2", "S3", "__global__"]
    code, out, _ = run(
        capsys,
        "audit",
        "--manifest",
        manifest,
        "--segment-by",
        "source",
        "--format",
        "html",
        "--out",
        tmp_path / "a.html",
    )
    assert code == 0 and "<table>" in (tmp_path / "a.html").read_text()
    code, _, err = run(capsys, "audit", "--manifest", tmp_path / "none.csv", "--segment-by", "x")
    assert (
        code == 2
        and err == f"segeval audit: error: The manifest '{tmp_path / 'none.csv'}' does not exist.\n"
    )


def hostile_cases(tmp_path):
    """Inputs a hostile run found accepted or crashing; each must end in one sentence, exit 2."""
    good = make_predictions(scale=0.05, seed=2)
    cases = []

    def save(name, frame):
        frame.to_parquet(tmp_path / name)
        return tmp_path / name

    p = save("good.parquet", good)
    cases.append((["--preds", p, "--thresholds", "0.2,1.5"], "thresholds must lie in [0, 1]"))
    cases.append((["--preds", p, "--segment-by", ""], "segment_by is empty"))
    zero = save("zero.parquet", good.assign(label=0))
    cases.append((["--preds", zero], "The predictions hold only negatives"))
    no_id = good.astype({"image_id": object})
    no_id.loc[4, "image_id"] = None
    cases.append((["--preds", save("noid.parquet", no_id)], "Column 'image_id' of"))
    moved = good.copy()
    first = moved.image_id.iloc[0]
    moved.loc[(moved.model == "periodic") & (moved.image_id == first), "source"] = "S9"
    cases.append((["--preds", save("moved.parquet", moved), "--segment-by", "source"], "Models "))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(
        '{"step": [1], "segment": "__global__", "wll": "x", "auc": 0.7}\n'
    )
    cases.append((["--preds", p, "--run", run_dir], "Line 1 of"))
    return cases


def test_hostile_inputs_exit_2_with_one_sentence(tmp_path, capsys):
    for argv, start in hostile_cases(tmp_path):
        out = tmp_path / "r.html"
        code, _, err = run(capsys, "report", *argv, "--n-boot", 5, "--out", out)
        assert code == 2, (argv, err)
        assert err.startswith(f"segeval report: error: {start}"), err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not out.exists()


def test_warnings_are_one_plain_line_each(tmp_path, capsys):
    preds = make_predictions(scale=0.05, seed=2)
    preds.loc[preds.source == "S2", "label"] = 0  # a segment without malignant images
    path = tmp_path / "p.parquet"
    preds.to_parquet(path)
    code, _, err = run(
        capsys, "report", "--preds", path, "--segment-by", "source", "--n-boot", 5,
        "--out", tmp_path / "r.html",
    )  # fmt: skip
    assert code == 0, err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("segeval: warning: ") for line in lines), err
    assert any("S2" in line and "no malignant images" in line for line in lines), err
    assert ".py" not in err and "warnings.warn" not in err


def test_escape_sequences_are_printed_escaped(tmp_path, capsys):
    preds = make_predictions(scale=0.05, seed=2)
    preds["source"] = preds["source"].str.replace("S1", "S1\x1b[2J")
    path = tmp_path / "p.parquet"
    preds.to_parquet(path)
    code, out, err = run(
        capsys, "report", "--preds", path, "--segment-by", "nope\x1b[31m",
        "--out", tmp_path / "r.html",
    )  # fmt: skip
    assert code == 2 and "\x1b" not in err and "\\x1b[31m" in err
    manifest = tmp_path / "m.csv"
    preds[preds.model == "periodic"].to_csv(manifest, index=False)
    code, out, err = run(capsys, "audit", "--manifest", manifest, "--segment-by", "source")
    assert code == 0 and "\x1b" not in out and "S1\\x1b[2J" in out


def test_audit_refuses_repeated_image_ids(tmp_path, capsys):
    preds = make_predictions(scale=0.05, seed=2)  # three models: each image three times
    manifest = tmp_path / "m.csv"
    preds.to_csv(manifest, index=False)
    code, _, err = run(capsys, "audit", "--manifest", manifest, "--segment-by", "source")
    assert code == 2 and "repeated image_id value(s)" in err


def test_report_files_are_written_as_a_set(tmp_path, capsys, preds_file, monkeypatch):
    out = tmp_path / "r.html"
    code, _, err = run(capsys, "report", "--preds", preds_file, "--n-boot", 5, "--out", out)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("segeval.report.render_html", broken)
    code, _, err = run(
        capsys, "report", "--preds", preds_file, "--n-boot", 6, "--seed", 1, "--out", out
    )
    assert code == 2 and "disk full" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
