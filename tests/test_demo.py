"""The demo, reduced: manifest -> prepare -> pretrain -> fit (8 runs) -> predict -> report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_quick_demo_end_to_end(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # The backbone is pre-trained once, and every model starts from it.
    backbone = tmp_path / "runs" / "pretrain" / "checkpoints" / "best.pt"
    assert (tmp_path / "runs" / "pretrain" / "report.html").is_file()
    for run in RUNS:
        assert (tmp_path / "runs" / run / "checkpoints" / "best.pt").is_file(), run
        config = (tmp_path / "runs" / run / "config.toml").read_text()
        assert f'init_backbone = "{backbone}"' in config, run
        assert (tmp_path / "preds" / f"{run}.parquet").is_file(), run
    data = json.loads((tmp_path / "report.json").read_text())
    assert sorted(data["models"]) == sorted(RUNS)
    assert {r["segment"] for r in data["metrics"]} == {
        "__global__",
        "(S3, Ma)",
        "(S3, Mb)",
        "(S4, Mc)",
        "(S4, Md)",
        "(S5, Mc)",
    }
    assert len(data["comparisons"]) == 7 * 6  # every run against single_S1Ma, per segment
    assert {r["run"] for r in data["training"]} == set(RUNS)
    page = Tables()
    page.feed((tmp_path / "report.html").read_text())
    assert set(SECTIONS) <= set(page.ids)
    on = {d["on"] for d in data["diagnostics"]}
    assert on == {"evaluated set", "validation, last step"}
    for model, table in zip(data["models"], metric_tables(page), strict=True):
        rows = [r for r in data["metrics"] if r["model"] == model]
        assert [row[7] for row in table[1:]] == [fmt(r["auc"]) for r in rows]
