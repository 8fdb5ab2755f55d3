"""The segment helper: several columns, binning, display names, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import segeval as se
from segeval.segments import SegmentColumn, as_segments


def frame():
    return pd.DataFrame(
        {
            "source": ["S2", "S1", "S1", "S2", "S1"],
            "manufacturer": ["Ma", "Mb", "Ma", "Ma", "Ma"],
            "age": [45, 50, 61, 80, 59.9],
        }
    )


def test_keys_of_several_columns():
    seg = se.segment_keys(frame(), "source,manufacturer")
    assert seg.names == ("(S1, Ma)", "(S1, Mb)", "(S2, Ma)")
    assert seg.values == (("S1", "Ma"), ("S1", "Mb"), ("S2", "Ma"))
    assert seg.columns == ("source", "manufacturer")
    assert seg.codes.tolist() == [2, 1, 0, 2, 0]
    assert seg.counts().tolist() == [2, 1, 2]
    assert [r.tolist() for r in seg.rows()] == [[2, 4], [1], [0, 3]]
    assert len(seg) == 3


def test_order_of_columns_sets_the_name():
    seg = se.segment_keys(frame(), ["manufacturer", "source"])
    assert seg.names == ("(Ma, S1)", "(Ma, S2)", "(Mb, S1)")


def test_binning_a_continuous_column():
    seg = se.segment_keys(frame(), "age:50,60,70")
    assert seg.names == ("<50", "[50,60)", "[60,70)", ">=70")
    assert seg.codes.tolist() == [0, 1, 2, 3, 1]  # 50 is in [50,60); 59.9 too
    seg = se.segment_keys(frame(), "source,age:60")
    assert seg.names == ("(S1, <60)", "(S1, >=60)", "(S2, <60)", "(S2, >=60)")


def test_parse_segment_by():
    assert se.parse_segment_by("age:50,60.5,source") == [
        SegmentColumn("age", (50.0, 60.5)),
        SegmentColumn("source"),
    ]
    assert se.parse_segment_by(["a", "b"]) == [SegmentColumn("a"), SegmentColumn("b")]
    assert SegmentColumn("x", (0.5, 2.0)).labels() == ["<0.5", "[0.5,2)", ">=2"]


def test_every_row_belongs_to_exactly_one_segment():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.choice(list("xyz"), 500), "b": rng.choice(["1", "2"], 500)})
    seg = se.segment_keys(df, "a,b")
    for code, (a, b) in enumerate(seg.values):
        np.testing.assert_array_equal(seg.codes == code, (df.a == a) & (df.b == b))


def test_as_segments_accepts_labels_frames_and_segments():
    seg = as_segments(["B", "A", "B"], 3)
    assert seg.names == ("A", "B") and seg.codes.tolist() == [1, 0, 1]
    assert as_segments(pd.Series(["u", "v"], name="site"), 2).columns == ("site",)
    assert as_segments(frame()[["source"]], 5).names == ("S1", "S2")
    assert as_segments(seg, 3) is seg
    with pytest.raises(ValueError, match="y_true has 4, segments has 3"):
        as_segments(["a", "b", "c"], 4)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            "hospital",
            "Segment column 'hospital' not found; available columns: source, manufacturer, age",
        ),
        ("", "segment_by must name at least one column"),
        ("source,source", "names a column twice"),
        ("age:60,50", "must increase strictly"),
        ("age:young", "Bin edges of segment column 'age' must be numbers"),
        ("source:1,2", "Segment column 'source' is binned but is not numeric"),
    ],
)
def test_bad_segment_by(spec, match):
    with pytest.raises(ValueError, match=match):
        se.segment_keys(frame(), spec)


def test_missing_values_and_empty_frame():
    df = frame()
    df.loc[1, "source"] = None
    with pytest.raises(ValueError, match="Segment column 'source' has 1 missing value"):
        se.segment_keys(df, "source")
    with pytest.raises(ValueError, match="empty table"):
        se.segment_keys(frame().iloc[:0], "source")


def test_a_2d_array_or_a_polars_like_frame_gives_several_columns():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    s = np.linspace(0, 1, 8)
    cols = np.array([["x", "p"], ["x", "p"], ["x", "q"], ["x", "q"]] * 2)
    cols[4:, 0] = "y"
    table = se.segment_table(y, s, cols)
    assert table.segment.tolist() == ["__global__", "(x, p)", "(x, q)", "(y, p)", "(y, q)"]

    class FakePolars:
        def to_pandas(self):
            return pd.DataFrame({"src": cols[:, 0], "man": cols[:, 1]})

    assert se.segment_table(y, s, FakePolars()).equals(table)
