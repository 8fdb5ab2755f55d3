"""segtrain prepare: arrays equal the on-the-fly preprocessing, boxes follow, resume works."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from segtrain.dataset import ManifestDataset
from segtrain.images import read_image
from segtrain.prepare import prepare
from segtrain.preprocess import preprocess
from segtrain.synth import make_dataset

H, W = 192, 190  # the model's minimum side is 190


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    make_dataset(out, scale=0.0005, segments=[("S1", "Ma"), ("S4", "Mc")], height=128, width=96)
    return out


def test_prepared_arrays_equal_preprocessing(raw, tmp_path):
    prepared = prepare(raw / "manifest.csv", tmp_path / "cache", height=H, width=W, workers=2)
    original = pd.read_csv(raw / "manifest.csv")
    assert prepared.image_id.tolist() == original.image_id.astype(str).tolist()
    for k in range(len(original)):
        expected = preprocess(read_image(raw / original.path[k]), height=H, width=W)
        got = np.load(tmp_path / "cache" / prepared.path[k])
        assert got.dtype == np.float16 and got.shape == (H, W)
        np.testing.assert_allclose(got, expected.image, atol=1e-3)  # float16 storage
        assert prepared.background[k] == pytest.approx(expected.background)
        if original.label[k] == 1:
            box = tuple(original.loc[k, ["lesion_x0", "lesion_y0", "lesion_x1", "lesion_y1"]])
            assert tuple(
                prepared.loc[k, ["lesion_x0", "lesion_y0", "lesion_x1", "lesion_y1"]]
            ) == pytest.approx(expected.map_box(box))
    on_disk = pd.read_csv(tmp_path / "cache" / "manifest.csv")
    assert on_disk.path.tolist() == prepared.path.tolist()


def test_resume_skips_finished_images(raw, tmp_path):
    out = tmp_path / "cache"
    first = prepare(raw / "manifest.csv", out, height=H, width=W)
    victim = out / first.path[0]
    victim.unlink()  # as if killed before this image was written
    marker = out / first.path[1]
    before = marker.stat().st_mtime_ns
    done = []
    again = prepare(
        raw / "manifest.csv", out, height=H, width=W, progress=lambda k, n: done.append((k, n))
    )
    assert victim.exists() and marker.stat().st_mtime_ns == before  # redone / kept
    assert done == [(1, len(first))] * len(first) and again.equals(first)


def test_dataset_reads_raw_and_prepared_alike(raw, tmp_path):
    prepared = prepare(raw / "manifest.csv", tmp_path / "cache", height=H, width=W)
    from_cache = ManifestDataset(prepared, tmp_path / "cache", height=H, width=W)
    from_raw = ManifestDataset(pd.read_csv(raw / "manifest.csv"), raw, height=H, width=W)
    assert len(from_cache) == len(from_raw)
    for k in (0, len(from_raw) - 1):
        a, label_a, index_a = from_cache[k]
        b, label_b, index_b = from_raw[k]
        assert a.shape == (1, H, W) and a.dtype == b.dtype
        assert (label_a, index_a) == (label_b, index_b) == (int(prepared.label[k]), k)
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-3)
    with pytest.raises(ValueError, match=r"expected \(48, 190\)"):
        ManifestDataset(prepared, tmp_path / "cache", height=48, width=W)[0]


def test_dotted_image_ids_get_one_array_each(raw, tmp_path):
    # DICOM UIDs: a suffix substituted at the last dot would map all of them to one file.
    manifest = pd.read_csv(raw / "manifest.csv").head(8)
    manifest["image_id"] = [f"1.2.840.113619.{k}" for k in range(8)]
    manifest["path"] = [str(raw / p) for p in manifest.path]
    manifest.to_csv(tmp_path / "dotted.csv", index=False)
    prepared = prepare(tmp_path / "dotted.csv", tmp_path / "cache", height=H, width=W, workers=2)
    assert prepared.path.nunique() == 8
    for k in range(8):
        got = np.load(tmp_path / "cache" / prepared.path[k])
        expected = preprocess(read_image(manifest.path[k]), height=H, width=W).image
        np.testing.assert_allclose(got, expected, atol=1e-3)


def test_another_size_recomputes_and_never_mixes(raw, tmp_path):
    out = tmp_path / "cache"
    prepare(raw / "manifest.csv", out, height=H, width=W)
    again = prepare(raw / "manifest.csv", out, height=H + 8, width=W)
    shapes = {np.load(out / p).shape for p in again.path}
    assert shapes == {(H + 8, W)}
    assert set(pd.read_csv(out / "manifest.csv").height) == {H + 8}
    assert json.loads((out / "prepare.json").read_text())["height"] == H + 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_mean": float("nan")}, "--target-mean must be a number in (0, 1); got nan"),
        ({"height": 64}, "--height 64 --width 190 is too small for the model: each side must be"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_written(raw, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        prepare(raw / "manifest.csv", tmp_path / "cache", **({"height": H, "width": W} | kwargs))
    assert not (tmp_path / "cache").exists()
