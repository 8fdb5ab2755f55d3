"""The paper's preprocessing (§3.1.1), step by step.

1. resize to height H, keeping the aspect ratio;
2. breast mask: automatic (Otsu) threshold, morphological opening and closing, the largest
   connected component, holes filled;
3. flip so that the breast (its chest wall) is always on the left;
4. crop or pad the width to W (cropping keeps the chest-wall side);
5. pixels inside the mask renormalized to [0, 1];
6. pixels outside the mask set to the constant that gives the image a fixed mean.

:func:`preprocess` also maps a lesion box through the same geometry, so that boxes given in
original pixels follow the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from segeval.validation import InputError

HEIGHT = 1152
WIDTH = 832
TARGET_MEAN = 0.25


@dataclass(frozen=True)
class Preprocessed:
    """The preprocessed image, its breast mask, and how the geometry changed.

    ``scale``: original pixels -> resized pixels; ``flipped``: mirrored left-right after
    resizing (to width ``resized_width``). Cropping and padding act on the right-hand side only,
    so columns keep their place. ``background``: the value given to pixels outside the mask.
    """

    image: NDArray[np.float32]
    mask: NDArray[np.bool_]
    scale: float
    flipped: bool
    resized_width: int
    background: float

    def map_box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A box (x0, y0, x1, y1) in original pixels, in output pixels (clipped to the frame)."""
        x0, y0, x1, y1 = (v * self.scale for v in box)
        if self.flipped:
            x0, x1 = self.resized_width - x1, self.resized_width - x0
        h, w = self.image.shape
        return (
            float(np.clip(x0, 0, w)),
            float(np.clip(y0, 0, h)),
            float(np.clip(x1, 0, w)),
            float(np.clip(y1, 0, h)),
        )


def resize_to_height(image: NDArray[np.float32], height: int) -> NDArray[np.float32]:
    """Bilinear resize to ``height`` rows, the width following the aspect ratio."""
    from PIL import Image

    h, w = image.shape
    width = max(1, round(w * height / h))
    resized = Image.fromarray(image.astype(np.float32)).resize(  # float32 -> mode "F"
        (width, height), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.float32)


def otsu_threshold(image: NDArray[np.float32], bins: int = 256) -> float:
    """The threshold that maximizes the between-class variance of the histogram (Otsu, 1979)."""
    counts, edges = np.histogram(image, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    mass_low = np.cumsum(counts * centers)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_low = mass_low / weight_low
        mean_high = (mass_low[-1] - mass_low) / weight_high
        between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[1:][np.nanargmax(between)])


def breast_mask(image: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Foreground by Otsu's threshold, cleaned by morphology; the largest component, filled.

    The threshold is found on log intensities: the log compresses the variations of dense
    tissue, so the one gap left to split is between the dark background and the breast.
    """
    low, high = float(image.min()), float(image.max())
    if high <= low:
        raise InputError("The image is constant: no breast can be told from the background.")
    logged = np.log1p(1000 * (image - low) / (high - low))
    mask = logged > otsu_threshold(logged)
    structure = np.ones((5, 5), dtype=bool)
    # Pad by replicating the border, so that the breast keeps touching the chest-wall edge.
    padded = np.pad(mask, 2, mode="edge")
    padded = ndimage.binary_closing(ndimage.binary_opening(padded, structure), structure)
    mask = padded[2:-2, 2:-2]
    labels, n = ndimage.label(mask)
    if n == 0:
        raise InputError("No breast region was found in the image.")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return np.asarray(ndimage.binary_fill_holes(labels == sizes.argmax()), dtype=bool)


def preprocess(
    image: NDArray[np.float32],
    *,
    height: int = HEIGHT,
    width: int = WIDTH,
    target_mean: float = TARGET_MEAN,
) -> Preprocessed:
    """Run the six steps on one image (any size, brighter = denser)."""
    if image.ndim != 2 or min(image.shape) < 2:
        raise InputError(f"The image must be 2-D with at least 2 pixels a side; got {image.shape}.")
    resized = resize_to_height(image, height)
    mask = breast_mask(resized)
    columns = mask.sum(axis=0)
    half = resized.shape[1] // 2
    flipped = bool(columns[half:].sum() > columns[:half].sum())
    if flipped:
        resized, mask = resized[:, ::-1], mask[:, ::-1]
    resized_width = resized.shape[1]
    # The chest wall is on the left now: crop or pad on the right.
    pad = max(0, width - resized_width)
    resized = np.pad(resized[:, :width], ((0, 0), (0, pad)))
    mask = np.pad(mask[:, :width], ((0, 0), (0, pad)))
    inside = resized[mask]
    low, high = float(inside.min()), float(inside.max())
    out = np.empty(mask.shape, dtype=np.float32)
    out[mask] = (inside - low) / (high - low) if high > low else 0.5
    n_out = int(mask.size - mask.sum())
    # The constant c outside the mask: (sum inside + c * n_out) / n_all = target_mean.
    background = (target_mean * mask.size - float(out[mask].sum())) / n_out if n_out else 0.0
    out[~mask] = background
    return Preprocessed(
        out, mask, height / image.shape[0], flipped, resized_width, float(background)
    )
