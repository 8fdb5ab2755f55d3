"""Suspiciously good global metrics (the paper's Figure 3 warning sign)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segeval.diagnostics import global_vs_local


def table(model, auc, wll):
    return pd.DataFrame(
        {"model": model, "segment": ["__global__", "A", "B"], "auc": auc, "wll": wll}
    )


def test_flags_and_messages():
    d = global_vs_local(
        pd.concat(
            [
                table("shortcut", [0.9, 0.7, 0.8], [0.6, 0.5, 0.7]),  # AUC above all locals only
                table("honest", [0.75, 0.7, 0.8], [0.6, 0.5, 0.7]),
                table("wll_only", [0.75, 0.7, 0.8], [0.4, 0.5, 0.7]),
            ]
        )
    ).set_index("model")
    assert d.loc["shortcut", "suspicious"] and d.loc["shortcut", "auc_above_all"]
    assert not d.loc["shortcut", "wll_below_all"]
    assert (
        "global AUC 0.900 is above every local AUC (best 0.800 on B)"
        in d.loc["shortcut", "message"]
    )
    assert not d.loc["honest", "suspicious"]
    assert "no sign of segment bias" in d.loc["honest", "message"]
    assert d.loc["wll_only", "suspicious"] and d.loc["wll_only", "wll_below_all"]
    assert (
        "global WLL 0.400 is below every local WLL (best 0.500 on A)"
        in d.loc["wll_only", "message"]
    )


def test_needs_two_defined_segments():
    d = global_vs_local(table("m", [0.9, 0.7, np.nan], [0.4, 0.5, np.nan]))
    assert not d.suspicious[0]
    assert "fewer than two segments with defined metrics" in d.message[0]
    assert not d.judged[0] and "segment bias is undefined" in d.message[0]
