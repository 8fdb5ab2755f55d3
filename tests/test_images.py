"""Image readers: compressed DICOM decodes to the same pixels, LUTs and photometry are applied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, RLELossless

from segtrain.images import ImageError, read_dicom, read_image
from segtrain.synth import SynthImage, write_dicom, write_png

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["mg_jpeg_lossless_sv1.dcm", "mg_jpeg_lossless.dcm"])
def test_jpeg_lossless_decodes_like_the_uncompressed_file(name):
    plain = read_dicom(DATA / "mg_uncompressed.dcm")
    assert "JPEG Lossless" in pydicom.dcmread(DATA / name).file_meta.TransferSyntaxUID.name
    np.testing.assert_array_equal(read_dicom(DATA / name), plain)


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, RLELossless])
def test_jpeg2000_and_rle_lossless_decode_like_uncompressed(tmp_path, syntax):
    ds = pydicom.dcmread(DATA / "mg_uncompressed.dcm")
    ds.compress(syntax)
    ds.save_as(tmp_path / "c.dcm")
    assert pydicom.dcmread(tmp_path / "c.dcm").file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(
        read_dicom(tmp_path / "c.dcm"), read_dicom(DATA / "mg_uncompressed.dcm")
    )


@pytest.mark.parametrize(
    "name", ["MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"]
)
def test_pydicom_reference_files_decode_alike(name):
    np.testing.assert_array_equal(
        read_dicom(get_testdata_file(name)), read_dicom(get_testdata_file("MR_small.dcm"))
    )


def image(values, mono1=False):
    pixels = np.asarray(values, dtype=np.uint16)
    return SynthImage(pixels, pixels > 0, None), ("Mc" if mono1 else "Ma")


def test_windowing_follows_the_voi_tags(tmp_path):
    pixels = np.arange(0, 4096, 64, dtype=np.uint16).reshape(8, 8)
    synth, maker = image(pixels)
    write_dicom(tmp_path / "w.dcm", synth, manufacturer=maker, compress=None)
    ds = pydicom.dcmread(tmp_path / "w.dcm")
    ds.WindowCenter, ds.WindowWidth = 1000, 801
    ds.save_as(tmp_path / "w.dcm")
    got = read_dicom(tmp_path / "w.dcm")
    # DICOM PS3.3 C.11.2.1.2.1, linear function, output range [0, 2^12 - 1].
    c, w, top = 1000, 801, 4095
    x = pixels.astype(float)
    expected = np.where(
        x <= c - 0.5 - (w - 1) / 2,
        0,
        np.where(x > c - 0.5 + (w - 1) / 2, top, ((x - (c - 0.5)) / (w - 1) + 0.5) * top),
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-3)


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    synth, maker = image(np.arange(64).reshape(8, 8))
    write_dicom(tmp_path / "r.dcm", synth, manufacturer=maker, compress=None)
    ds = pydicom.dcmread(tmp_path / "r.dcm")
    del ds.WindowCenter, ds.WindowWidth
    ds.RescaleSlope, ds.RescaleIntercept = 2, -10
    ds.save_as(tmp_path / "r.dcm")
    np.testing.assert_array_equal(
        read_dicom(tmp_path / "r.dcm"), 2 * np.arange(64).reshape(8, 8) - 10
    )


def test_monochrome1_comes_out_with_a_dark_background(tmp_path):
    # Stored MONOCHROME1: background (air) has the highest values, tissue low.
    pixels = np.full((20, 20), 4000, dtype=np.uint16)
    pixels[5:15, :10] = 800
    synth, maker = image(pixels, mono1=True)
    write_dicom(tmp_path / "m1.dcm", synth, manufacturer=maker, compress=None)
    assert pydicom.dcmread(tmp_path / "m1.dcm").PhotometricInterpretation == "MONOCHROME1"
    out = read_dicom(tmp_path / "m1.dcm")
    assert out[0, 19] < out[10, 5]  # background darker than tissue


def test_png_8_and_16_bit_and_npy(tmp_path):
    from PIL import Image

    eight = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(eight).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), eight)
    synth, _ = image(np.arange(0, 65536, 256).reshape(16, 16))
    write_png(tmp_path / "b.png", synth)
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), synth.pixels)
    np.save(tmp_path / "c.npy", eight.astype(np.float64))
    np.testing.assert_array_equal(read_image(tmp_path / "c.npy"), eight)


def test_bad_images_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(b"DICM" * 10)
    with pytest.raises(ImageError, match=r"The DICOM file '.*corrupt\.dcm' cannot be decoded"):
        read_image(corrupt)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes((DATA / "mg_uncompressed.dcm").read_bytes()[:-2000])
    with pytest.raises(ImageError, match=r"truncated\.dcm' cannot be decoded"):
        read_image(truncated)
    with pytest.raises(ImageError, match=r"The DICOM file '.*' must hold one grayscale frame"):
        read_image(get_testdata_file("SC_rgb_rle.dcm"))
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"must be \.dcm, \.png or \.npy; got '\.jpg'"):
        read_image(tmp_path / "x.jpg")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match=r"The PNG file '.*bad\.png' cannot be read"):
        read_image(tmp_path / "bad.png")
    np.save(tmp_path / "v.npy", np.zeros(5))
    with pytest.raises(ImageError, match="must hold a 2-D numeric image; got shape"):
        read_image(tmp_path / "v.npy")
