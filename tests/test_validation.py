"""validation: warnings name the caller's line, however deep in segeval they are raised."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import segeval as se
from segeval.validation import caller_stacklevel, warn, warn_undefined


def recorded(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [w for w in caught if issubclass(w.category, UserWarning)]


def one_class_segment():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.random(200)
    seg = np.where(rng.random(200) < 0.5, "A", "B")
    y[seg == "A"] = 0
    return y, s, seg


@pytest.mark.parametrize(
    "call",
    [
        lambda: se.roc_auc([0, 0], [0.1, 0.2]),
        lambda: se.weighted_log_loss([1, 1], [0.1, 0.2]),
        lambda: se.operating_points([0, 0], [0.1, 0.2]),  # raised two segeval frames deep
        lambda: se.delong_delta_auc_test([0, 0, 1], [0.1, 0.2, 0.3], [0.2, 0.1, 0.3]),
        lambda: se.segment_table(*one_class_segment(), n_boot=10),
        lambda: se.op_synchronization(*one_class_segment(), n_boot=10),
    ],
    ids=["roc_auc", "wll", "operating_points", "delong", "segment_table", "op_synchronization"],
)
def test_undefined_metric_warnings_point_at_the_callers_line(call):
    caught = recorded(call)
    assert caught and all(w.category is se.UndefinedMetricWarning for w in caught)
    assert {w.filename for w in caught} == {__file__}, [(w.filename, w.lineno) for w in caught]


def test_the_stack_level_skips_every_segeval_frame_and_no_other():
    assert caller_stacklevel() == 1  # called from outside segeval: this very frame
    caught = recorded(lambda: warn("a general warning"))
    assert [(w.category, w.filename) for w in caught] == [(UserWarning, __file__)]
    caught = recorded(lambda: warn_undefined("undefined"))
    assert [(w.category, w.filename) for w in caught] == [(se.UndefinedMetricWarning, __file__)]
