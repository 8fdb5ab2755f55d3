"""Augmentation: seeded, background-preserving, and lesions stay in the frame."""

from __future__ import annotations

import math

import torch

from segtrain.augment import AugmentConfig, augment, random_transforms


def test_identity_config_leaves_images_unchanged():
    images = torch.rand(3, 1, 32, 24)
    cfg = AugmentConfig(rotation=0, zoom=(1, 1), shear=0)
    out = augment(images, cfg=cfg, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_same_seed_same_result_and_background_fill():
    images = torch.rand(4, 1, 40, 30)
    background = torch.tensor([0.1, 0.2, 0.3, 0.4])
    cfg = AugmentConfig(rotation=30, zoom=(0.7, 0.8), shear=10)
    a = augment(images, background=background, cfg=cfg, generator=torch.Generator().manual_seed(1))
    b = augment(images, background=background, cfg=cfg, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    # Zooming out by 0.7-0.8 brings in pixels from outside: they take the image's background.
    for k in range(4):
        assert torch.isclose(a[k, 0, 0, 0], background[k], atol=1e-6)


def test_lesion_stays_inside_the_frame():
    gen = torch.Generator().manual_seed(2)
    h, w = 64, 48
    cfg = AugmentConfig(rotation=40, zoom=(1.3, 1.6), shear=15, tries=50)
    # Lesions near the edges, which strong zooms would push out.
    boxes = torch.tensor(
        [[1.0, 1.0, 6.0, 6.0], [40.0, 55.0, 47.0, 63.0], [20.0, 30.0, 26.0, 36.0], [math.nan] * 4]
        * 25
    )
    m = random_transforms(boxes, h, w, cfg, gen)
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64)
    for k in range(boxes.shape[0]):
        if torch.isnan(boxes[k]).any():
            continue
        x0, y0, x1, y1 = boxes[k].double()
        corners = torch.tensor([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=torch.float64)
        out = (torch.linalg.inv(m[k]) @ (corners - centre).T).T + centre
        assert (out[:, 0] >= 0).all() and (out[:, 0] <= w).all()
        assert (out[:, 1] >= 0).all() and (out[:, 1] <= h).all()
    # A lesion pixel is still visible: a bright box survives the resampling.
    image = torch.zeros(1, 1, h, w)
    image[0, 0, 1:6, 1:6] = 1
    out = augment(image, boxes=boxes[:1], cfg=cfg, generator=torch.Generator().manual_seed(5))
    assert out.max() > 0.5


def test_flips_when_configured():
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, :, :4] = 1
    cfg = AugmentConfig(rotation=0, zoom=(1, 1), shear=0, hflip=True)
    seen = set()
    for seed in range(12):
        out = augment(image, cfg=cfg, generator=torch.Generator().manual_seed(seed))
        seen.add(bool(out[0, 0, 4, 0] > 0.5))
    assert seen == {True, False}  # left half stays or moves right, at random
