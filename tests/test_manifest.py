"""Manifest validation: every problem reported before training, in one sentence."""

from __future__ import annotations

import pandas as pd
import pytest

from segeval.validation import InputError
from segtrain.manifest import lesion_boxes, read_manifest


def write(tmp_path, rows, name="m.csv", touch=True):
    df = pd.DataFrame(rows)
    if touch and "path" in df:
        for p in df["path"]:
            (tmp_path / p).write_bytes(b"x")
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def rows(n=4):
    return [
        {
            "image_id": f"i{k}",
            "patient_id": f"p{k}",
            "path": f"i{k}.png",
            "label": k % 2,
            "source": "S1" if k < n // 2 else "S2",
        }
        for k in range(n)
    ]


def test_reads_and_segments(tmp_path):
    df, seg = read_manifest(write(tmp_path, rows()), "source")
    assert seg.names == ("S1", "S2") and df.label.dtype == "int8"
    assert lesion_boxes(df).shape == (4, 4)


def test_missing_files_are_listed_all_at_once(tmp_path):
    path = write(tmp_path, rows(14), touch=False)
    (tmp_path / "i3.png").write_bytes(b"x")
    with pytest.raises(
        InputError,
        match=r"13 image file\(s\) listed in '.*m\.csv' are missing "
        r"\(paths are relative to '.*'\): i0\.png, i1\.png, "
        r"i2\.png, i4\.png.*and 3 more\.",
    ):
        read_manifest(path, "source")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda r: [dict(x, label=2) for x in r],
            r"Column 'label' of '.*' must contain only 0 and 1",
        ),
        (lambda r: [*r, dict(r[0])], r"repeats 1 image_id\(s\): i0\."),
        (
            lambda r: [{k: v for k, v in x.items() if k != "path"} for x in r],
            r"lacks the required column\(s\) path",
        ),
        (lambda r: r[:0], r"has no rows"),
    ],
)
def test_bad_manifests(tmp_path, change, match):
    data = change(rows())
    path = tmp_path / "m.csv"
    (pd.DataFrame(data) if data else pd.DataFrame(columns=list(rows()[0]))).to_csv(
        path, index=False
    )
    for r in data:
        if "path" in r:
            (tmp_path / r["path"]).write_bytes(b"x")
    with pytest.raises(InputError, match=match):
        read_manifest(path, "source")


def test_missing_segment_column(tmp_path):
    with pytest.raises(InputError, match=r"Manifest '.*': Segment column 'maker' not found"):
        read_manifest(write(tmp_path, rows()), "source,maker")


def test_patient_in_several_segments_warns(tmp_path):
    data = rows()
    data[3]["patient_id"] = "p0"  # p0 in S1 and S2
    with pytest.warns(UserWarning, match=r"1 patient\(s\) appear in several segments \(p0\)"):
        read_manifest(write(tmp_path, data), "source")
