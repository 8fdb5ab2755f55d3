"""The demo, reduced: manifest -> prepare -> pretrain -> fit (8 models x 2 seeds) -> predict ->
report, with the comparisons across seeds and the leakage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from segeval.report import fmt
from tests.test_report import SECTIONS, Tables, metric_tables

ROOT = Path(__file__).resolve().parents[1]
RUNS = [
    "single_S1Ma",
    "single_S1Mb",
    "exp1_bal_labels",
    "exp1_bal_segments",
    "exp1_periodic",
    "exp2_bal_labels",
    "exp2_bal_segments",
    "exp2_periodic",
]


@pytest.mark.slow  # about 2 minutes on 2 idle cores: `pytest -m 'not slow'` skips it
def test_quick_demo_end_to_end(tmp_path):
    demo = [sys.executable, str(ROOT / "examples" / "demo.py"), "--quick", "--seeds", "2"]
    done = subprocess.run(
        [*demo, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # The backbone is pre-trained once, and every model starts from it.
    backbone = tmp_path / "runs" / "pretrain" / "checkpoints" / "best.pt"
    assert (tmp_path / "runs" / "pretrain" / "report.html").is_file()
    for run in RUNS + [f"{r}_seed1" for r in RUNS]:
        assert (tmp_path / "runs" / run / "checkpoints" / "best.pt").is_file(), run
        config = (tmp_path / "runs" / run / "config.toml").read_text()
        assert f'init_backbone = "{backbone}"' in config, run
        assert f"seed = {1 if run.endswith('_seed1') else 0}" in config, run
        assert (tmp_path / "preds" / f"{run}.parquet").is_file(), run
    data = json.loads((tmp_path / "report.json").read_text())
    models = [f"{r} [run seed{k}]" for r in RUNS for k in (0, 1)]
    assert sorted(data["models"]) == sorted(models)
    # Every strategy against the baseline over images and both seeds, per segment.
    assert len(data["recipe_comparisons"]) == 7 * 6
    assert {r["n_runs"] for r in data["recipe_comparisons"]} == {2}
    assert len(data["run_deltas"]) == 7 * 6 * 2
    # The first screen: one row per model, over its two seeds, the baseline first.
    card = [r["model"] for r in data["scorecard"]]
    assert card[0] == "single_S1Ma" and sorted(card) == sorted(RUNS)
    assert {r["n_runs"] for r in data["scorecard"]} == {2}
    # Leakage on test for every run; on validation for the first seed's run folders (the
    # report's --run), and in leakage_validation.csv for every seed.
    on_test = {r["model"] for r in data["leakage_summary"] if r["on"] == "evaluated set"}
    assert on_test == set(models)
    multi = set(RUNS) - {"single_S1Ma", "single_S1Mb"}  # one segment: no leakage to measure
    on_val = {r["model"] for r in data["leakage_summary"] if r["on"] == "validation"}
    assert on_val == multi
    leakage = pd.read_csv(tmp_path / "leakage_validation.csv")
    assert set(leakage.model) == multi
    assert set(leakage.seed) == {0, 1}
    first = leakage[leakage.seed == 0].set_index(["model", "label", "segment"]).auc
    report = pd.DataFrame(data["leakage"]).query("on == 'validation'")
    assert (
        report.set_index(["model", "label", "segment"]).auc.sort_index().equals(first.sort_index())
    )  # the same AUCs: the same images and scores
    assert {r["segment"] for r in data["metrics"]} == {
        "__global__",
        "(S3, Ma)",
        "(S3, Mb)",
        "(S4, Mc)",
        "(S4, Md)",
        "(S5, Mc)",
    }
    # Every run against the baseline's first run, per segment.
    assert len(data["comparisons"]) == (len(models) - 1) * 6
    assert {r["run"] for r in data["training"]} == set(RUNS)
    page = Tables()
    page.feed((tmp_path / "report.html").read_text())
    assert set(SECTIONS) <= set(page.ids)
    on = {d["on"] for d in data["diagnostics"]}
    assert on == {"evaluated set", "validation, last step"}
    for model, table in zip(data["models"], metric_tables(page), strict=True):
        rows = [r for r in data["metrics"] if r["model"] == model]
        assert [row[7] for row in table[1:]] == [fmt(r["auc"]) for r in rows]
    # The README's tables across seeds come from this script; it reads the same folder.
    tables = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "seeds_effect.py"), str(tmp_path), "--n-boot",
         "20"], capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert tables.returncode == 0, tables.stderr[-3000:]
    lines = tables.stdout.splitlines()
    assert sum(line.startswith(("| exp1", "| exp2")) for line in lines) == 6 + 4 + 6
    assert sum("| 2 |" in line for line in lines if line.startswith("| exp1_periodic")) == 1


def test_a_local_run_can_skip_the_demo():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow", __file__],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert "test_quick_demo_end_to_end" not in done.stdout
    assert "test_a_local_run_can_skip_the_demo" in done.stdout
