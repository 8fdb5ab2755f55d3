"""Reading predictions: every bad input is one clear sentence; writes are atomic."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from segeval.io import read_predictions, to_jsonable, write_json, write_text
from segeval.validation import InputError


def preds(**override):
    df = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "model": ["m"] * 4,
            "label": [0, 1, 0, 1],
            "score": [0.1, 0.9, 0.4, 0.6],
            "source": ["S1", "S1", "S2", "S2"],
        }
    )
    return df.assign(**override)


def write(tmp_path, df, name="p.parquet"):
    path = tmp_path / name
    if name.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path)
    return path


def test_reads_parquet_and_csv_and_names_models_by_stem(tmp_path):
    a = write(tmp_path, preds().drop(columns="model"), "modelA.csv")
    b = write(tmp_path, preds(model="modelB"))
    df = read_predictions([a, b])
    assert sorted(df.model.unique()) == ["modelA", "modelB"]
    assert df.label.dtype == np.int8 and df.score.dtype == np.float64
    assert df.image_id.tolist()[:2] == ["a", "b"]


@pytest.mark.parametrize(
    ("df", "match"),
    [
        (
            preds().drop(columns="score"),
            r"lacks the required column\(s\) score; it has image_id, model, label, source",
        ),
        (
            preds(label=[0, 1, 2, 1]),
            r"Column 'label' of '.*p.parquet' must contain only 0 and 1; got 2 in 1 row",
        ),
        (preds(label=["0", "1", "x", "1"]), r"must contain only 0 and 1; got 'x'"),
        (
            preds(score=[0.1, np.nan, 0.4, 0.6]),
            r"Column 'score' of .* must be finite numbers; got nan in 1 row",
        ),
        (preds(score=[0.1, np.inf, 0.4, 0.6]), r"must be finite numbers; got inf"),
        (
            preds(score=[0.1, 1.5, -0.2, 0.6]),
            r"must be probabilities in \[0, 1\]; got 1.5, -0.2 in 2 row",
        ),
        (
            preds(image_id=["a", "a", "c", "d"]),
            r"1 duplicate \(image_id, model\) row\(s\), first image_id 'a' for model 'm'",
        ),
        (preds().iloc[:0], "has no rows"),
    ],
)
def test_bad_predictions(tmp_path, df, match):
    with pytest.raises(InputError, match=match):
        read_predictions([write(tmp_path, df)])


def test_models_on_different_images(tmp_path):
    a = write(tmp_path, preds(model="A"), "a.parquet")
    b = write(tmp_path, preds(model="B", image_id=["a", "b", "x", "y"]), "b.parquet")
    with pytest.raises(InputError, match="2 image\\(s\\) only in 'A', 2 only in 'B'"):
        read_predictions([a, b])


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(InputError, match=r"The predictions file '.*nope.parquet' does not exist"):
        read_predictions([tmp_path / "nope.parquet"])
    bad = tmp_path / "p.json"
    bad.write_text("{}")
    with pytest.raises(
        InputError, match=r"must be Parquet \(.parquet\) or CSV \(.csv\); got '.json'"
    ):
        read_predictions([bad])
    corrupt = tmp_path / "c.parquet"
    corrupt.write_bytes(b"not parquet")
    with pytest.raises(InputError, match="is not a readable Parquet file"):
        read_predictions([corrupt])


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json(target, {"a": object()})  # not serializable: fails mid-write
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left
    mask = os.umask(0)
    os.umask(mask)
    assert (target.stat().st_mode & 0o777) == 0o666 & ~mask


def test_json_has_no_nan(tmp_path):
    assert to_jsonable({"x": float("nan"), "y": np.float32(2.0), "z": np.arange(2)}) == {
        "x": None,
        "y": 2.0,
        "z": [0, 1],
    }
    write_text(tmp_path / "t.txt", "é")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "é"


def test_writes_never_change_the_umask(tmp_path, monkeypatch):
    # Reading the umask means setting it (os.umask); done per write, a thread creating a file
    # meanwhile would get the temporary mask. It is read once, at import.
    import segeval.io as io

    def umask(mask):
        raise AssertionError("os.umask called while writing")

    monkeypatch.setattr(os, "umask", umask)
    write_text(tmp_path / "a.txt", "x")
    io.write_files({tmp_path / "b.txt": "y"})
    for name in ("a.txt", "b.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~io._UMASK
    monkeypatch.undo()
    mask = os.umask(0)
    os.umask(mask)
    assert mask == io._UMASK
