"""Patches: surjective augmentation (every output pixel from the crop), balanced batches."""

from __future__ import annotations

import numpy as np
import pytest

from segeval.validation import InputError
from segtrain.patches import (
    BalancedBatchSampler,
    PatchAugment,
    crop_bounds,
    extract_patch,
    random_transform,
    source_coordinates,
)

STRONG = PatchAugment(rotation=30.0, zoom=(0.8, 1.2), shear=10.0)


def ramp(h: int = 700, w: int = 600) -> np.ndarray:
    """f(x, y) = x + 3y: bilinear interpolation reproduces it exactly anywhere."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx + 3 * yy).astype(np.float64)


@pytest.mark.parametrize("seed", range(12))
def test_every_output_pixel_comes_from_the_crop(seed):
    rng = np.random.default_rng(seed)
    size = 224 if seed == 0 else 40
    matrix = random_transform(rng, STRONG)
    centre = (float(rng.uniform(280, 320)), float(rng.uniform(330, 370)))
    coords = source_coordinates(matrix, centre, size)
    x0, y0, x1, y1 = crop_bounds(coords)
    # Each source coordinate and its bilinear neighbour (floor + 1) lie inside the crop...
    assert coords[0].min() >= x0 and np.floor(coords[0].max()) + 1 <= x1 - 1
    assert coords[1].min() >= y0 and np.floor(coords[1].max()) + 1 <= y1 - 1
    # ...which is "nearly" the patch size: more when zoomed out or rotated, less zoomed in.
    assert 0.75 * size < x1 - x0 < 1.8 * size and 0.75 * size < y1 - y0 < 1.8 * size
    image = ramp()
    patch = extract_patch(image, centre, size, background=np.nan, matrix=matrix)
    # Each output pixel is the image interpolated at its source (exact on a linear ramp)...
    np.testing.assert_allclose(patch, coords[0] + 3 * coords[1], rtol=0, atol=0.05)
    # ...and nothing outside the crop takes part: poisoning it changes no output pixel.
    poisoned = np.full_like(image, np.nan)
    poisoned[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    again = extract_patch(poisoned, centre, size, background=np.nan, matrix=matrix)
    np.testing.assert_array_equal(again, patch)


def test_without_augmentation_a_patch_copies_pixels():
    image = np.random.default_rng(0).random((400, 400)).astype(np.float32)
    patch = extract_patch(image, (150.3, 170.9), 224, background=0.0)
    # The centre is snapped so that the patch is whole pixels: x from 150.3 - 111.5 -> 39.
    x0, y0 = 39, 59
    np.testing.assert_array_equal(patch, image[y0 : y0 + 224, x0 : x0 + 224])


def test_beyond_the_frame_the_background_value_is_used():
    image = np.ones((100, 100), dtype=np.float32)
    patch = extract_patch(image, (10.5, 50.5), 40, background=0.25)
    # Columns -9..30 of the image: 9 beyond its left edge.
    assert (patch[:, :9] == 0.25).all() and (patch[:, 9:] == 1).all()


def test_batches_hold_every_class_equally():
    labels = np.repeat(np.arange(5), [50, 3, 7, 20, 1])
    sampler = BalancedBatchSampler(labels, 5, batch_size=64, seed=3)
    stream = iter(sampler)
    drawn = []
    for _ in range(20):
        batch = next(stream)
        counts = np.bincount(labels[[i for i, _ in batch]], minlength=5)
        assert counts.max() - counts.min() <= 1 and counts.sum() == 64
        drawn += [i for i, _ in batch]
    # Within a class, a seeded permutation: every sample drawn as often as the others (+-1).
    per_sample = np.bincount(drawn, minlength=labels.size)
    for c in range(5):
        mine = per_sample[labels == c]
        assert mine.max() - mine.min() <= 1
    # Keys number the stream's elements; the stream is a pure function of the seed.
    assert [k for _, k in sampler.batch(2)] == list(range(128, 192))
    again = BalancedBatchSampler(labels, 5, batch_size=64, seed=3)
    again.load_state_dict(sampler.state_dict() | {"next_batch": 7})  # the fingerprinted state
    assert next(iter(again)) == sampler.batch(7)
    other = BalancedBatchSampler(labels, 5, batch_size=32, seed=3)
    with pytest.raises(InputError, match="belongs to another stream"):
        other.load_state_dict(sampler.state_dict())
    assert BalancedBatchSampler(labels, 5, batch_size=64, seed=4).batch(0) != sampler.batch(0)


def test_ranks_split_each_global_batch_keys_included():
    # Under torchrun each rank takes a contiguous block of the global batch, keys (hence
    # augmentations) included: W processes of batch b draw what one process of batch W*b does.
    labels = np.repeat(np.arange(5), [50, 3, 7, 20, 1])
    single = BalancedBatchSampler(labels, 5, batch_size=12, seed=1)
    ranks = [
        BalancedBatchSampler(labels, 5, batch_size=4, seed=1, rank=r, world_size=3)
        for r in range(3)
    ]
    for k in range(10):
        assert [x for r in ranks for x in r.batch(k)] == single.batch(k)


def test_a_class_without_samples_is_refused():
    with pytest.raises(InputError, match=r"No training sample of class\(es\) \[2\]"):
        BalancedBatchSampler(np.array([0, 1, 3, 4]), 5, batch_size=8)
