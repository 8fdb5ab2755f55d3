"""Preprocessing invariants, checked on synthetic breasts whose masks are known."""

from __future__ import annotations

import numpy as np
import pytest

from segeval.validation import InputError
from segtrain.preprocess import otsu_threshold, preprocess, resize_to_height
from segtrain.synth import DEVICES, synth_image

H, W = 256, 184


def cases(n=40, seed=0):
    rng = np.random.default_rng(seed)
    for k in range(n):
        maker = list(DEVICES)[k % 4]
        image = synth_image(
            rng,
            label=k % 2,
            source=f"S{1 + k % 5}",
            manufacturer=maker,
            height=240 + 16 * (k % 3),
            width=150 + 20 * (k % 4),
        )
        raw = image.pixels.astype(np.float32)
        if DEVICES[maker].monochrome1:  # as read_dicom returns it: bright tissue
            raw = raw.max() + raw.min() - raw
        yield image, raw


def true_mask_after(image, result):
    """The known mask moved through the same resize, flip and crop/pad."""
    mask = resize_to_height(image.mask.astype(np.float32), H) > 0.5
    if result.flipped:
        mask = mask[:, ::-1]
    return np.pad(mask[:, :W], ((0, 0), (0, max(0, W - mask.shape[1]))))


@pytest.mark.parametrize("target", [0.2, 0.3])
def test_invariants(target):
    for image, raw in cases():
        out = preprocess(raw, height=H, width=W, target_mean=target)
        assert out.image.shape == (H, W) and out.image.dtype == np.float32
        inside = out.image[out.mask]
        assert inside.min() == 0 and inside.max() == 1
        assert float(out.image.mean(dtype=np.float64)) == pytest.approx(target, abs=1e-5)
        assert np.all(out.image[~out.mask] == np.float32(out.background))
        truth = true_mask_after(image, out)
        iou = (truth & out.mask).sum() / (truth | out.mask).sum()
        assert iou >= 0.95


def test_breast_ends_up_on_the_left():
    for _, raw in cases(12):
        out = preprocess(raw, height=H, width=W)
        left, right = out.mask[:, : W // 2].sum(), out.mask[:, W // 2 :].sum()
        assert left > right
        assert out.mask[:, 0].sum() > 0  # the chest wall touches the left edge


def test_lesion_box_follows_the_image():
    rng = np.random.default_rng(3)
    for _ in range(10):
        image = synth_image(rng, label=1, source="S1", manufacturer="Ma", height=128, width=96)
        out = preprocess(image.pixels.astype(np.float32), height=H, width=W)
        x0, y0, x1, y1 = (2 * v for v in image.box)  # the resize doubles every coordinate
        if out.flipped:
            x0, x1 = 192 - x1, 192 - x0
        assert out.map_box(image.box) == pytest.approx((x0, y0, min(x1, W), y1))
        # The lesion is brighter than the tissue around it, inside the mapped box.
        bx0, by0, bx1, by1 = (round(v) for v in out.map_box(image.box))
        assert out.image[by0:by1, bx0:bx1].max() > np.median(out.image[out.mask])


def test_otsu_splits_two_modes():
    values = np.r_[np.full(500, 10.0), np.full(500, 50.0)].astype(np.float32)
    assert 10 <= otsu_threshold(values) < 50


def test_bad_images():
    with pytest.raises(InputError, match="The image is constant"):
        preprocess(np.ones((20, 20), np.float32), height=16, width=16)
    with pytest.raises(InputError, match="must be 2-D with at least 2 pixels"):
        preprocess(np.ones((1, 20), np.float32))
