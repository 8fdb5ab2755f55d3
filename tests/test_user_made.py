"""Issue 24, segeval's part: run folders read without mixing, hostile evaluate() arguments, and
names long enough to exhaust the memory of a figure."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import segeval as se
from segeval.io import read_runs
from segeval.synthetic import make_predictions
from segeval.validation import InputError

RECORD = '{"step": 1, "segment": "__global__", "wll": 0.5, "auc": 0.7}\n'


def run_folder(path, text=RECORD):
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text(text) if isinstance(text, str) else (
        path / "metrics.jsonl"
    ).write_bytes(text)
    return path


def test_run_folders_are_read_without_mixing(tmp_path):
    a, b = run_folder(tmp_path / "x" / "run1"), run_folder(tmp_path / "y" / "run1")
    with pytest.raises(InputError, match=r"Two run folders are named 'run1' .* NAME=FOLDER"):
        read_runs([a, b])
    runs = read_runs([f"periodic={a}", f"balanced={b}"])
    assert sorted(set(runs.training.run)) == ["balanced", "periodic"]
    with pytest.raises(InputError, match=r"The run folder '.*run1' is given twice"):
        read_runs([a, a])
    with pytest.raises(InputError, match=r"--run takes FOLDER or NAME=FOLDER; got '=x'"):
        read_runs(["=x"])
    val = a / "preds"
    val.mkdir()
    p = make_predictions(scale=0.02)
    p.to_parquet(val / "val.parquet")
    with pytest.raises(InputError, match=r"holds 3 models' rows .* one model's"):
        read_runs([a])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b'{"step": 1, "segment": "\xff", "wll": 0.5, "auc": 0.7}\n', r"is not UTF-8 text"),
        ('{"step": 1, "segment": "(S1, Ma)", "wll": 0.5, "auc": 0.7}\n', r"no whole-set record"),
        ('{"step": 1, "segment": "__global__", "wll": 0.5, "auc": 5}\n', r"a number in \[0, 1\]"),
        ('{"step": 1, "segment": "__global__", "wll": -1, "auc": 0.5}\n', r"finite number >= 0"),
    ],
)
def test_a_bad_metrics_log_is_one_sentence(tmp_path, text, match):
    folder = run_folder(tmp_path / "run", text)
    with pytest.raises(InputError, match=match):
        read_runs([folder])
    preds = tmp_path / "p.parquet"
    make_predictions(scale=0.02).to_parquet(preds)
    done = subprocess.run(
        [sys.executable, "-m", "segeval.cli", "report", "--preds", str(preds), "--run",
         str(folder), "--n-boot", "5", "--out", str(tmp_path / "r.html")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "r.html").exists()


def test_hostile_arguments_of_evaluate_are_one_sentence():
    p = make_predictions(scale=0.03)
    cases = [
        (
            dict(thresholds="abc"),
            p,
            r"thresholds must be a list of numbers, e\.g\. \[0\.2, 0\.4\]; got the text 'abc'",
        ),
        (dict(cluster="patient_id"), p.assign(patient_id=""), r"'patient_id' .* is empty in"),
        ({}, p.assign(model=p.model.replace("periodic", "")), r"holds an empty name in"),
        (
            dict(cluster="patient_id"),
            p.assign(patient_id=np.where(p.model == "periodic", "x", p.patient_id)),
            r"put image '.*' in different clusters \(column 'patient_id'",
        ),
    ]
    for kw, frame, match in cases:
        with pytest.raises(InputError, match=match):
            se.evaluate(frame, segment_by="source", n_boot=5, **kw)
    named = p.assign(model=p.model.replace("periodic", "lr=0.1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = se.evaluate(named, segment_by="source", baseline="lr=0.1", n_boot=5)
    assert set(ev.baselines.values()) == {"lr=0.1"}


def test_a_name_of_100000_characters_is_cut_in_figures_and_page_not_in_json(tmp_path):
    """It exhausted 23 GB before (matplotlib laid out the name); now about 1 GB."""
    p = make_predictions(scale=0.03)
    long_segment, long_model = "S" * 100_000, "m" * 100_000
    p["source"] = p.source.replace("S1", long_segment)
    p["model"] = p.model.replace("periodic", long_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = se.evaluate(p, segment_by="source", baseline="single_segment", n_boot=10)
        ev.write(tmp_path / "r.html")
    data = json.loads((tmp_path / "r.json").read_text())
    assert long_segment in data["segments"] and long_model in data["models"]
    page = (tmp_path / "r.html").read_text()
    assert long_segment not in page and long_model not in page
    assert "S" * 79 + "…" in page
    import matplotlib

    matplotlib.use("Agg", force=False)
    ax = se.plot.forest(ev, model=long_model)
    labels = [t.get_text() for t in ax.get_yticklabels()] + [ax.get_title()]
    assert max(len(t) for t in labels) <= 60 + len(" (unstable)")
    assert pd.Series(labels).str.contains("…").any()
