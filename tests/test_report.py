"""The HTML report: same numbers as report.json, escaped names, undefined metrics shown."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import segeval as se
from segeval.evaluate import evaluate_predictions
from segeval.report import write_report


def tiny_preds(segment_names):
    rng = np.random.default_rng(0)
    rows = []
    for name in segment_names:
        y = np.array([0, 1] * 10)
        for model in ("A", "B"):
            rows.append(
                pd.DataFrame(
                    {
                        "image_id": [f"{name}-{k}" for k in range(20)],
                        "model": model,
                        "label": y,
                        "score": rng.random(20),
                        "site": name,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_segment_names_are_escaped(tmp_path):
    evil = '<script>alert("x")</script>'
    ev = evaluate_predictions(tiny_preds([evil, "ok"]), segment_by="site", baseline="A", n_boot=20)
    html = write_report(ev, tmp_path / "r.html")[0].read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    data = json.loads((tmp_path / "r.json").read_text())
    assert evil in data["segments"]


def test_one_class_segment_renders_undefined_with_reason(tmp_path):
    preds = tiny_preds(["S1", "S2"])
    preds.loc[preds.site == "S2", "label"] = 0
    with pytest.warns(se.UndefinedMetricWarning, match="Segment S2: Only negatives"):
        ev = evaluate_predictions(preds, segment_by="site", baseline="A", n_boot=20)
    html = write_report(ev, tmp_path / "r.html")[0].read_text()
    assert "undefined" in html
    assert "Only negatives (label 0) present in y_true. WLL or AUC is not defined" in html
    data = json.loads((tmp_path / "r.json").read_text())
    s2 = next(r for r in data["metrics"] if r["segment"] == "S2")
    assert s2["auc"] is None  # NaN is written as null, never as an invalid JSON token
