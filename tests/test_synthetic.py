"""Synthetic predictions: reproducible, and the shortcut model looks suspiciously good globally."""

from __future__ import annotations

import pytest

import segeval as se
from segeval.synthetic import make_predictions


def test_same_seed_same_table():
    assert make_predictions(scale=0.1, seed=4).equals(make_predictions(scale=0.1, seed=4))
    assert not make_predictions(scale=0.1, seed=4).equals(make_predictions(scale=0.1, seed=5))


def test_shortcut_model_is_better_globally_than_on_every_segment():
    df = make_predictions(seed=0)
    g = df[df.model == "bal_labels"]
    t = se.segment_table(g.label, g.score, g[["source", "manufacturer"]])
    assert t.auc[0] > t.auc[1:].max()
    assert t.wll[0] < t.wll[1:].min()
    p = df[df.model == "periodic"]
    tp = se.segment_table(p.label, p.score, p[["source", "manufacturer"]])
    assert tp.auc[0] < tp.auc[1:].max()  # an honest model: global AUC among the local ones


def test_bad_scale():
    with pytest.raises(ValueError, match="scale must be positive; got 0"):
        make_predictions(scale=0)
