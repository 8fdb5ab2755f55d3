"""Synthetic multi-source, mammography-like data: the embedded default for demos and tests.

Each data segment is a (source, manufacturer) pair with the sizes and prevalences of the paper's
Table 1, scaled by ``scale``. An image is a breast (a half-ellipse against the chest wall, left
or right) of smooth random tissue; a malignant image (label 1) also holds a lesion, a mass or a
cluster of calcifications, whose box is given in the manifest. On top of that:

- each manufacturer has a device signature: intensity response (gain, gamma), noise, bit depth,
  and one of them stores MONOCHROME1 (inverted) images;
- each source leaves a faint horizontal banding of its own period inside the breast (as a
  detector grid would), a nuisance cue that survives the preprocessing, and burns a small
  marker into the background (which the breast mask removes).

Since prevalence differs between sources, the banding predicts the label on pooled data: a model
trained with balanced labels can learn the source instead of the lesion, the paper's failure
mode. The breast mask of every image is known, which tests the preprocessing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import ndimage

from segeval.io import write_csv
from segeval.validation import InputError

# The paper's Table 1: (source, manufacturer) -> (benign images, malignant images).
TABLE1: dict[tuple[str, str], tuple[int, int]] = {
    ("S1", "Ma"): (13341, 7258),
    ("S1", "Mb"): (527, 408),
    ("S2", "Ma"): (21871, 160),
    ("S2", "Mb"): (19040, 146),
    ("S3", "Ma"): (14192, 1106),
    ("S3", "Mb"): (46006, 2059),
    ("S4", "Mc"): (4387, 28),
    ("S4", "Md"): (19740, 133),
    ("S5", "Mc"): (38951, 131),
}


@dataclass(frozen=True)
class Device:
    """How a manufacturer's detector renders tissue density d in [0, 1] to stored values."""

    gain: float
    gamma: float
    noise: float
    bits: int
    monochrome1: bool = False


DEVICES = {
    "Ma": Device(gain=0.85, gamma=1.0, noise=0.015, bits=12),
    "Mb": Device(gain=0.7, gamma=1.4, noise=0.03, bits=14),
    "Mc": Device(gain=0.9, gamma=0.8, noise=0.02, bits=12, monochrome1=True),
    "Md": Device(gain=0.6, gamma=1.2, noise=0.01, bits=16),
}

# The period of each source's banding, as a fraction of the image height.
BANDING = {"S1": 1 / 24, "S2": 1 / 14, "S3": 1 / 32, "S4": 1 / 18, "S5": 1 / 10}
# Where each source burns its marker (row, column as fractions of the frame).
MARKERS = {
    "S1": (0.05, 0.88),
    "S2": (0.9, 0.88),
    "S3": (0.05, 0.5),
    "S4": (0.9, 0.5),
    "S5": (0.5, 0.92),
}


@dataclass(frozen=True)
class SynthImage:
    """Stored pixel values, the true breast mask, and the lesion box (x0, y0, x1, y1) or None."""

    pixels: NDArray[np.uint16]
    mask: NDArray[np.bool_]
    box: tuple[int, int, int, int] | None


def _tissue(rng: np.random.Generator, shape: tuple[int, int]) -> NDArray[np.float64]:
    h = shape[0]
    coarse = ndimage.gaussian_filter(rng.normal(size=shape), h / 25)
    fine = ndimage.gaussian_filter(rng.normal(size=shape), h / 120)
    texture = coarse / (coarse.std() + 1e-9) + 0.5 * fine / (fine.std() + 1e-9)
    return np.asarray(0.45 + 0.08 * texture, dtype=np.float64)


def _lesion(
    rng: np.random.Generator,
    density: NDArray[np.float64],
    mask: NDArray[np.bool_],
    radius: NDArray[np.float64],
) -> tuple[int, int, int, int]:
    h, w = density.shape
    ys, xs = np.nonzero(mask & (radius < 0.7))
    k = rng.integers(ys.size)
    cy, cx = int(ys[k]), int(xs[k])
    yy, xx = np.mgrid[0:h, 0:w]
    if rng.random() < 0.6:  # a mass: a dense blob
        sigma = h * rng.uniform(0.02, 0.035)
        density += 0.22 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        half = 2.5 * sigma
    else:  # a cluster of calcifications: small bright dots
        spread = h * 0.025
        for _ in range(int(rng.integers(6, 13))):
            dy, dx = rng.normal(0, spread / 2, 2)
            density += 0.5 * np.exp(-((yy - cy - dy) ** 2 + (xx - cx - dx) ** 2) / 2.0)
        half = 1.3 * spread
    return (
        max(0, int(cx - half)),
        max(0, int(cy - half)),
        min(w, math.ceil(cx + half)),
        min(h, math.ceil(cy + half)),
    )


def synth_image(
    rng: np.random.Generator,
    *,
    label: int,
    source: str,
    manufacturer: str,
    height: int = 256,
    width: int = 192,
) -> SynthImage:
    """One image of a segment, with its known breast mask and lesion box."""
    device = DEVICES[manufacturer]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    left = rng.random() < 0.5
    a = width * rng.uniform(0.55, 0.8)
    b = height * rng.uniform(0.36, 0.46)
    cy = height / 2 + rng.normal(0, height * 0.03)
    cx = 0.0 if left else width - 1.0
    radius = np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2)
    mask = radius <= 1
    density = _tissue(rng, (height, width)) * (0.75 + 0.25 * np.clip(1 - radius**4, 0, 1))
    density *= 1 + 0.06 * np.sin(2 * np.pi * yy / (BANDING[source] * height))
    box = _lesion(rng, density, mask, radius) if label == 1 else None
    density = np.where(mask, np.clip(density, 0.05, 1), 0.0)
    row, col = MARKERS[source]
    r0, c0 = int(row * height), int(col * width) if left else int((1 - col) * width)
    density[r0 : r0 + max(3, height // 40), max(0, c0 - width // 20) : c0] = 0.95
    signal = device.gain * density**device.gamma + rng.normal(0, device.noise, density.shape)
    top = 2**device.bits - 1
    stored = np.clip(0.03 + signal, 0, 1) * top
    if device.monochrome1:
        stored = top - stored
    return SynthImage(np.round(stored).astype(np.uint16), mask, box)


def segment_sizes(
    scale: float,
    segments: Sequence[tuple[str, str]] | None = None,
    *,
    min_per_label: int = 2,
) -> dict[tuple[str, str], tuple[int, int]]:
    """Benign and malignant images per segment: Table 1 scaled, at least ``min_per_label`` each."""
    if not scale > 0:
        raise InputError(f"scale must be positive; got {scale!r}.")
    chosen = list(TABLE1) if segments is None else list(segments)
    unknown = [s for s in chosen if s not in TABLE1]
    if unknown:
        names = ", ".join(f"{a}:{b}" for a, b in unknown)
        known = ", ".join(f"{a}:{b}" for a, b in TABLE1)
        raise InputError(f"Unknown segment(s) {names}; Table 1 has {known}.")
    return {
        s: (
            max(min_per_label, round(TABLE1[s][0] * scale)),
            max(min_per_label, round(TABLE1[s][1] * scale)),
        )
        for s in chosen
    }


def write_dicom(path: Path, image: SynthImage, *, manufacturer: str, compress: str | None) -> None:
    """A Digital Mammography DICOM with its device's bit depth, window and photometry."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        UID,
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        RLELossless,
        generate_uid,
    )

    device = DEVICES[manufacturer]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.2")  # Digital Mammography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Manufacturer = manufacturer
    ds.Rows, ds.Columns = image.pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if device.monochrome1 else "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = device.bits
    ds.HighBit = device.bits - 1
    ds.PixelRepresentation = 0
    top = 2**device.bits - 1
    ds.WindowCenter = top / 2
    ds.WindowWidth = top + 1
    ds.PixelData = image.pixels.tobytes()
    if compress:
        ds.compress({"j2k": JPEG2000Lossless, "rle": RLELossless}[compress])
    ds.save_as(path, enforce_file_format=True)


def write_png(path: Path, image: SynthImage) -> None:
    """A 16-bit grayscale PNG (MONOCHROME1 devices are stored as shown: bright tissue)."""
    from PIL import Image

    Image.fromarray(image.pixels).save(path)  # uint16 -> a 16-bit grayscale PNG


def make_dataset(
    out: str | Path,
    *,
    scale: float = 0.01,
    segments: Sequence[tuple[str, str]] | None = None,
    image_format: str = "dcm",
    compress: str | None = None,
    height: int = 256,
    width: int = 192,
    images_per_patient: int = 2,
    min_per_label: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """Write images and ``manifest.csv`` to ``out``; return the manifest.

    ``image_format`` is ``dcm`` or ``png``; ``compress`` (DICOM only) is ``j2k`` (JPEG 2000
    lossless) or ``rle``. Each segment gets at least ``min_per_label`` images of each label
    (rare labels scale to almost nothing). The same seed gives the same images.
    """
    if image_format not in ("dcm", "png"):
        raise InputError(f"image_format must be 'dcm' or 'png'; got {image_format!r}.")
    if compress not in (None, "j2k", "rle") or (compress and image_format != "dcm"):
        raise InputError(f"compress must be 'j2k' or 'rle' with DICOM images; got {compress!r}.")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    sizes = segment_sizes(scale, segments, min_per_label=min_per_label)
    for (source, maker), (n_ben, n_mal) in sizes.items():
        # A segment's images depend on the seed and the segment only, not on which others run.
        key = list(TABLE1).index((source, maker))
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))
        labels = np.r_[np.zeros(n_ben, int), np.ones(n_mal, int)]
        within = np.r_[np.arange(n_ben), np.arange(n_mal)]
        for i, (label, j) in enumerate(zip(labels, within, strict=True)):
            image = synth_image(
                rng, label=int(label), source=source, manufacturer=maker, height=height, width=width
            )
            image_id = f"{source}{maker}-{i:05d}"
            rel = Path("images") / f"{image_id}.{image_format}"
            if image_format == "dcm":
                write_dicom(out / rel, image, manufacturer=maker, compress=compress)
            else:
                write_png(out / rel, image)
            x0, y0, x1, y1 = image.box if image.box else (np.nan,) * 4
            rows.append(
                {
                    "image_id": image_id,
                    # Patients do not cross labels: positives and negatives are numbered apart.
                    "patient_id": f"{source}{maker}-{'P' if label else 'N'}"
                    f"{j // images_per_patient:05d}",
                    "path": rel.as_posix(),
                    "label": int(label),
                    "source": source,
                    "manufacturer": maker,
                    "lesion_x0": x0,
                    "lesion_y0": y0,
                    "lesion_x1": x1,
                    "lesion_y1": y1,
                }
            )
    manifest = pd.DataFrame(rows)
    write_csv(out / "manifest.csv", manifest)
    return manifest
