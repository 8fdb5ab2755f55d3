"""Patches for backbone pre-training (Appendix A.3): surjective augmentation, balanced batches.

The augmentation transform (rotation, zoom, shear) is drawn *before* cropping, as the appendix
says, so that the crop can be sized to it: the crop is the smallest pixel-aligned box holding
the source of every output pixel (and its bilinear neighbours). Its side is "nearly" the patch
size, a little more when rotated or zoomed out, and every output pixel is then interpolated
from pixels of that crop alone: the transform is surjective, nothing is padded in. Where the
crop reaches past the image's frame, the frame is extended with the image's background value
(the constant that preprocessing gives every pixel outside the breast).

Each patch's transform comes from its own seed (the run's seed and the patch's position in
the stream of training samples), so a patch does not depend on the data loader's workers, and
a resumed run draws exactly the patches an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from torch.utils.data import Sampler

from segeval.validation import InputError
from segtrain.sampler import BatchStream, check_ranks, rank_positions, stream_fingerprint


@dataclass(frozen=True)
class PatchAugment:
    """Ranges of the random transform: degrees for angles, zoom as a factor (> 1 magnifies)."""

    rotation: float = 10.0
    zoom: tuple[float, float] = (0.9, 1.1)
    shear: float = 5.0


def random_transform(rng: np.random.Generator, cfg: PatchAugment) -> NDArray[np.float64]:
    """A 2x2 matrix mapping output offsets to source offsets, (x, y) order."""
    angle = math.radians(rng.uniform(-cfg.rotation, cfg.rotation))
    shear = math.tan(math.radians(rng.uniform(-cfg.shear, cfg.shear)))
    zoom = rng.uniform(*cfg.zoom)
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    matrix: NDArray[np.float64] = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) / zoom
    return matrix


def source_coordinates(
    matrix: NDArray[np.float64], centre: tuple[float, float], size: int
) -> NDArray[np.float64]:
    """(2, size, size) source (x, y) in image pixels of every output pixel of the patch."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    ox, oy = np.meshgrid(offsets, offsets)  # [row, column]
    sx = centre[0] + matrix[0, 0] * ox + matrix[0, 1] * oy
    sy = centre[1] + matrix[1, 0] * ox + matrix[1, 1] * oy
    return np.stack([sx, sy])


def crop_bounds(coordinates: NDArray[np.float64]) -> tuple[int, int, int, int]:
    """The smallest pixel box (x0, y0, x1, y1; x1, y1 exclusive) holding every source pixel and
    the bilinear neighbours of every source coordinate."""
    sx, sy = coordinates
    return (
        math.floor(sx.min()),
        math.floor(sy.min()),
        math.floor(sx.max()) + 2,
        math.floor(sy.max()) + 2,
    )


def crop(
    image: NDArray[np.floating], bounds: tuple[int, int, int, int], background: float
) -> NDArray[np.float32]:
    """``image[y0:y1, x0:x1]``, the frame extended with ``background`` where the box leaves it."""
    x0, y0, x1, y1 = bounds
    h, w = image.shape
    out = np.full((y1 - y0, x1 - x0), background, dtype=np.float32)
    ya, yb, xa, xb = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    return out


def snap(centre: tuple[float, float], size: int) -> tuple[float, float]:
    """The nearest centre at which an untransformed patch copies whole pixels."""
    half = (size - 1) / 2
    return float(round(centre[0] - half) + half), float(round(centre[1] - half) + half)


def extract_patch(
    image: NDArray[np.floating],
    centre: tuple[float, float],
    size: int,
    *,
    background: float,
    matrix: NDArray[np.float64] | None = None,
) -> NDArray[np.float32]:
    """A (size, size) patch centred on ``centre`` (x, y pixels), transformed by ``matrix``.

    The crop is cut first (:func:`crop_bounds`), then resampled bilinearly; without ``matrix``
    the patch is a plain copy of the image's pixels around the snapped centre.
    """
    if matrix is None:
        matrix = np.eye(2)
        centre = snap(centre, size)
    coordinates = source_coordinates(matrix, centre, size)
    bounds = crop_bounds(coordinates)
    source = crop(image, bounds, background)
    local = coordinates - np.array(bounds[:2], dtype=np.float64)[:, None, None]
    # map_coordinates wants (row, column): y first.
    out = ndimage.map_coordinates(source, [local[1], local[0]], order=1, mode="nearest")
    return np.asarray(out, dtype=np.float32)


class BalancedBatchSampler(BatchStream, Sampler[list[tuple[int, int]]]):
    """Endless batches in which every class has the same number of samples (within one).

    Slot j of global batch k takes class ``(k * B + j) % n_classes`` (B = batch_size *
    world_size); each class reads its samples in a seeded permutation, reshuffled (with a new
    seed) when exhausted. A batch element is ``(sample index, key)``, the key being the
    element's position in the whole stream, so that the dataset can seed the sample's
    augmentation with it. Rank r takes the r-th contiguous block of each global batch. The
    stream is a pure function of (labels, batch size, world size, seed); the state (shared
    with :class:`segtrain.sampler.PeriodicBatchSampler`) is the next batch to consume.
    """

    def __init__(
        self,
        labels: NDArray[np.int64],
        n_classes: int,
        *,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_ranks(batch_size, rank, world_size)
        self.pools = [np.flatnonzero(labels == c) for c in range(n_classes)]
        empty = [c for c, pool in enumerate(self.pools) if pool.size == 0]
        if empty:
            raise InputError(f"No training sample of class(es) {empty}; every class needs some.")
        self.n_classes, self.batch_size, self.seed = n_classes, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.next_batch, self._tracked, self._chunk = 0, False, 1
        self.fingerprint = stream_fingerprint(
            np.asarray(labels, dtype=np.int64).tobytes(),
            repr((n_classes, int(seed), batch_size, world_size)).encode(),
        )
        self._perms: dict[tuple[int, int], NDArray[np.intp]] = {}

    def batches(self, first: int, count: int) -> list[list[tuple[int, int]]]:
        """This rank's batches ``first .. first + count - 1``."""
        keys = rank_positions(first, count, self.batch_size, self.rank, self.world_size)
        return [self._draw(row) for row in keys]

    def batch(self, k: int) -> list[tuple[int, int]]:
        """Batch ``k`` of this rank."""
        return self.batches(k, 1)[0]

    def _draw(self, keys: NDArray[np.int64]) -> list[tuple[int, int]]:
        classes = keys % self.n_classes
        draws = keys // self.n_classes  # the how-many-th draw of its class
        out = []
        for key, c, t in zip(keys.tolist(), classes.tolist(), draws.tolist(), strict=True):
            pool = self.pools[c]
            out.append((int(pool[self._perm(c, t // pool.size)[t % pool.size]]), key))
        return out

    def _perm(self, c: int, epoch: int) -> NDArray[np.intp]:
        if (c, epoch) not in self._perms:
            if len(self._perms) > 4 * self.n_classes:
                self._perms.clear()
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(c, epoch)))
            self._perms[(c, epoch)] = rng.permutation(self.pools[c].size)
        return self._perms[(c, epoch)]
