"""Synthetic data: Table 1 scaled, device signatures, lesions, and a source shortcut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest

import segeval as se
from segeval.validation import InputError
from segtrain.images import read_image
from segtrain.preprocess import preprocess
from segtrain.synth import BANDING, TABLE1, make_dataset, segment_sizes


def test_sizes_follow_table_1():
    sizes = segment_sizes(0.01)
    assert sizes[("S1", "Ma")] == (133, 73)
    assert sizes[("S2", "Ma")] == (219, 2)  # at least 2 of each label
    assert set(sizes) == set(TABLE1)
    with pytest.raises(InputError, match="Unknown segment"):
        segment_sizes(0.01, [("S9", "Mz")])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    manifest = make_dataset(
        out,
        scale=0.003,
        segments=[("S1", "Ma"), ("S2", "Ma"), ("S4", "Mc")],
        height=128,
        width=96,
        seed=4,
    )
    return out, manifest


def test_manifest_and_files(data):
    out, manifest = data
    assert pd.read_csv(out / "manifest.csv").image_id.tolist() == manifest.image_id.tolist()
    positives = manifest[manifest.label == 1]
    assert positives[["lesion_x0", "lesion_y1"]].notna().all().all()
    assert manifest[manifest.label == 0].lesion_x0.isna().all()
    mono = pydicom.dcmread(out / manifest[manifest.manufacturer == "Mc"].path.iloc[0])
    assert mono.PhotometricInterpretation == "MONOCHROME1"
    assert (manifest.groupby("patient_id").label.nunique() == 1).all()


def test_same_seed_same_images(data, tmp_path):
    out, _manifest = data
    again = make_dataset(
        tmp_path, scale=0.003, segments=[("S2", "Ma")], height=128, width=96, seed=4
    )
    first = again.path.iloc[0]
    assert (tmp_path / first).read_bytes()[-2000:] == (out / first).read_bytes()[-2000:]


def banding_power(image: np.ndarray, period: float) -> float:
    profile = image.mean(axis=1) - image.mean()
    freqs = np.fft.rfftfreq(profile.size)
    spectrum = np.abs(np.fft.rfft(profile))
    return float(spectrum[np.argmin(np.abs(freqs - 1 / period))])


def test_source_shortcut_survives_preprocessing(data):
    out, manifest = data
    rows = manifest[manifest.source.isin(["S1", "S2"])]
    feature, is_s1 = [], []
    for r in rows.itertuples():
        image = preprocess(read_image(out / r.path), height=128, width=96).image
        feature.append(
            banding_power(image, BANDING["S1"] * 128) - banding_power(image, BANDING["S2"] * 128)
        )
        is_s1.append(r.source == "S1")
    # The banding tells the sources apart from the preprocessed pixels alone...
    assert se.roc_auc(is_s1, feature) > 0.9
    # ...and, as prevalence differs (35% against 1%), it predicts the label on the pooled set
    # nearly as well as knowing the source does, without looking at any lesion.
    by_source = se.roc_auc(rows.label, is_s1)
    assert by_source > 0.7
    assert se.roc_auc(rows.label, feature) > 0.85 * by_source
