"""Synthetic data: Table 1 scaled, device signatures, lesions, and a source shortcut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest

import segeval as se
from segeval.validation import InputError
from segtrain.images import read_image
from segtrain.lesions import LESION_CLASSES, read_lesions
from segtrain.preprocess import preprocess
from segtrain.synth import BANDING, TABLE1, TABLE8_IMAGES, make_dataset, segment_sizes, synth_image


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
    # The manifest's lesion box is the malignant lesion's, as before benign lesions existed.
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


def test_lesion_presence_does_not_predict_the_label():
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 2
    images = [
        synth_image(rng, label=int(y), source="S1", manufacturer="Ma", height=128, width=96)
        for y in labels
    ]
    count = np.array([len(im.lesions) for im in images])
    # Any lesion, or how many: close to a coin toss (a 400-image AUC has an SD of about 0.03).
    assert abs(se.roc_auc(labels, count > 0) - 0.5) < 0.06
    assert abs(se.roc_auc(labels, count) - 0.5) < 0.08
    # What does predict it is the kind of lesion: every malignant image holds a malignant one,
    # and no benign image does.
    malignant = np.array(
        [any(d.lesion_class.startswith("malignant") for d in im.lesions) for im in images]
    )
    assert (malignant == labels.astype(bool)).all()
    benign_kinds = {d.lesion_class for im in images for d in im.lesions} - {
        "malignant_soft_tissue",
        "malignant_calcification",
    }
    assert benign_kinds == {"benign_soft_tissue", "benign_calcification"}


def test_healthy_tissue_lies_in_the_breast_away_from_lesions():
    rng = np.random.default_rng(1)
    n = 0
    for y in np.arange(60) % 2:
        image = synth_image(rng, label=int(y), source="S1", manufacturer="Ma", height=128, width=96)
        for x0, y0, x1, y1 in image.healthy:
            n += 1
            assert image.mask[y0:y1, x0:x1].all()
            for lesion in image.lesions:
                a0, b0, a1, b1 = lesion.box
                assert x1 <= a0 or a1 <= x0 or y1 <= b0 or b1 <= y0
    assert n >= 60


def test_lesion_table_annotates_a_subset_of_s1_ma(data):
    out, manifest = data
    lesions = read_lesions(out / "lesions.csv", manifest.image_id)
    assert list(lesions.columns[:6]) == ["image_id", "lesion_class", "x0", "y0", "x1", "y1"]
    assert set(lesions.lesion_class) == set(LESION_CLASSES)
    rows = manifest.set_index("image_id").loc[lesions.image_id]
    assert (rows.source == "S1").all() and (rows.manufacturer == "Ma").all()
    s1ma = manifest[(manifest.source == "S1") & (manifest.manufacturer == "Ma")]
    assert lesions.image_id.nunique() < len(s1ma)  # a subset
    # Malignant lesions only in malignant images, and their boxes are the manifest's.
    label = rows.label.to_numpy()
    assert (label[lesions.lesion_class.str.startswith("malignant").to_numpy()] == 1).all()
    assert (label[(lesions.lesion_class == "healthy_tissue").to_numpy()] == 0).all()
    # Table 8, scaled: images per class in proportion to the segment's size.
    per_class = lesions.groupby("lesion_class").image_id.nunique()
    scale = len(s1ma) / sum(TABLE1[("S1", "Ma")])
    for name, count in TABLE8_IMAGES.items():
        assert abs(per_class[name] - count * scale) <= 1 + 0.1 * count * scale, name
    assert (lesions[["x0", "y0"]].to_numpy() >= 0).all()
    assert (lesions.x1 <= 96).all() and (lesions.y1 <= 128).all()


def test_synth_cli_annotates_the_chosen_segment(tmp_path, capsys):
    from segtrain.cli import main

    argv = ["synth", "--scale", "0.001", "--format", "png", "--height", "128", "--width", "96"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--segments", "S2:Ma"]) == 0
    assert not (tmp_path / "a" / "lesions.csv").exists()  # (S1, Ma) is not written
    code = main([*argv, "--out", str(tmp_path / "b"), "--segments", "S2:Ma", "--annotate", "S1:Ma"])
    assert code == 2
    assert "--annotate S1:Ma is not among --segments S2:Ma." in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "c"), "--segments", "S1:Ma"]) == 0
    assert "and " + str(tmp_path / "c" / "lesions.csv") in capsys.readouterr().out
