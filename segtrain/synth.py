"""Synthetic multi-source, mammography-like data: the embedded default for demos and tests.

Each data segment is a (source, manufacturer) pair with the sizes and prevalences of the paper's
Table 1, scaled by ``scale``. An image is a breast (a half-ellipse against the chest wall, left
or right) of smooth random tissue holding lesions of the paper's five patch classes (Appendix
A.3): a malignant image (label 1) holds an irregular, spiculated mass or a tight cluster of fine,
pleomorphic calcifications (or both), whose box is given in the manifest; benign images, and
some malignant ones, hold benign lesions: smooth, round, well-circumscribed masses, or a few
coarse, round, scattered calcifications. The proportions make the number of lesions useless on
its own: only their shapes tell the labels apart. A subset of one segment's images, (S1, Ma) by
default, gets its lesions and some healthy-tissue boxes annotated in ``lesions.csv`` (Table 8,
scaled). On top of that:

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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import ndimage, special

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

# The paper's Table 8: images of (S1, Ma) with an annotated patch of each class.
TABLE8_IMAGES = {
    "healthy_tissue": 1773,
    "benign_soft_tissue": 2252,
    "benign_calcification": 1162,
    "malignant_soft_tissue": 5187,
    "malignant_calcification": 2254,
}
ANNOTATED = ("S1", "Ma")


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
class Lesion:
    """One lesion drawn into an image: its class (``segtrain.lesions.LESION_CLASSES``) and box."""

    lesion_class: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1 and y1 exclusive


@dataclass(frozen=True)
class SynthImage:
    """Stored pixel values, the true breast mask, the box of the malignant lesion(s) (x0, y0,
    x1, y1) or None, every lesion drawn, and boxes of healthy tissue away from all of them."""

    pixels: NDArray[np.uint16]
    mask: NDArray[np.bool_]
    box: tuple[int, int, int, int] | None
    lesions: tuple[Lesion, ...] = ()
    healthy: tuple[tuple[int, int, int, int], ...] = ()


def _tissue(rng: np.random.Generator, shape: tuple[int, int]) -> NDArray[np.float64]:
    h = shape[0]
    coarse = ndimage.gaussian_filter(rng.normal(size=shape), h / 25)
    fine = ndimage.gaussian_filter(rng.normal(size=shape), h / 120)
    texture = coarse / (coarse.std() + 1e-9) + 0.5 * fine / (fine.std() + 1e-9)
    return np.asarray(0.45 + 0.08 * texture, dtype=np.float64)


Grid = NDArray[np.float64]

# How many lesions an image holds, and of which kind. Every malignant image holds its malignant
# lesion(s) (Table 6 of the paper: soft tissue 69%, calcifications 28.5%, both 2.5%) and a
# benign one 30% of the time; 95% of benign images hold one or two benign lesions (soft tissue
# 73%, as in Table 8). The lesion count is then about as likely to be higher in a benign image
# as in a malignant one: telling the labels apart takes the lesions' shapes.
BENIGN_COUNT = (0.05, 0.5, 0.45)  # P(0, 1, 2 benign lesions) in a benign image
EXTRA_BENIGN = 0.3  # P(one benign lesion) in a malignant image
BENIGN_SOFT = 0.73
MALIGNANT_KIND = {"soft": 0.69, "calcification": 0.285, "both": 0.025}
HEALTHY_COUNT = (0.54, 0.46)  # P(1, 2 healthy-tissue boxes) (Table 8: 1.46 per image)


def _disk(yy: Grid, xx: Grid, cy: float, cx: float) -> tuple[Grid, Grid]:
    dy, dx = yy - cy, xx - cx
    return np.hypot(dy, dx), np.arctan2(dy, dx)


def _benign_mass(
    rng: np.random.Generator, density: Grid, yy: Grid, xx: Grid, cy: int, cx: int, h: int
) -> float:
    """Smooth, round, well circumscribed: a disc with a sharp edge."""
    r0 = h * rng.uniform(0.022, 0.035)
    r, _ = _disk(yy, xx, cy, cx)
    density += rng.uniform(0.16, 0.22) * special.expit((r0 - r) / 0.6)
    return r0 + 2


def _malignant_mass(
    rng: np.random.Generator, density: Grid, yy: Grid, xx: Grid, cy: int, cx: int, h: int
) -> float:
    """Irregular and spiculated: a lobulated blob with a blurred edge and radiating lines."""
    r0 = h * rng.uniform(0.02, 0.032)
    r, theta = _disk(yy, xx, cy, cx)
    amps = rng.uniform(0.05, 0.15, 5)
    edge = r0 * (
        1
        + sum(
            a * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
            for k, a in zip(range(3, 8), amps, strict=True)
        )
    )
    density += rng.uniform(0.16, 0.22) * special.expit((edge - r) / 1.5)
    reach = r0 * (1 + amps.sum()) + r0 * rng.uniform(0.8, 1.5)
    for angle in rng.uniform(0, 2 * np.pi, int(rng.integers(6, 13))):
        along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        across = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        inside = (along > 0.6 * r0) & (along < reach)  # from inside the body outwards
        density += 0.12 * inside * (1 - along / reach) * np.exp(-(across**2) / (2 * 0.8**2))
    return float(reach + 1)


def _calcifications(
    rng: np.random.Generator,
    density: Grid,
    yy: Grid,
    xx: Grid,
    cy: int,
    cx: int,
    h: int,
    *,
    malignant: bool,
) -> float:
    """Benign: a few coarse, round, scattered dots. Malignant: many fine, pleomorphic
    (elongated, varied) dots in a tight cluster."""
    if malignant:
        n, spread = int(rng.integers(8, 17)), h * 0.015
    else:
        n, spread = int(rng.integers(2, 6)), h * rng.uniform(0.03, 0.045)
    half = 0.0
    for _ in range(n):
        dy, dx = spread * math.sqrt(rng.random()) * _unit(rng)  # uniform in a disc
        if malignant:
            major, minor = rng.uniform(0.7, 1.5), rng.uniform(0.4, 0.7)
            angle = rng.uniform(0, np.pi)
            u = (xx - cx - dx) * np.cos(angle) + (yy - cy - dy) * np.sin(angle)
            v = -(xx - cx - dx) * np.sin(angle) + (yy - cy - dy) * np.cos(angle)
            density += rng.uniform(0.35, 0.6) * np.exp(
                -(u**2) / (2 * major**2) - v**2 / (2 * minor**2)
            )
            size = 3 * major
        else:
            radius = rng.uniform(1.6, 2.6)
            d = np.hypot(yy - cy - dy, xx - cx - dx)
            density += 0.45 * special.expit((radius - d) / 0.4)
            size = radius + 2
        half = max(half, abs(dy) + size, abs(dx) + size)
    return half


def _unit(rng: np.random.Generator) -> NDArray[np.float64]:
    angle = rng.uniform(0, 2 * np.pi)
    return np.array([np.sin(angle), np.cos(angle)])


def _box(cy: float, cx: float, half: float, h: int, w: int) -> tuple[int, int, int, int]:
    return (
        max(0, int(cx - half)),
        max(0, int(cy - half)),
        min(w, math.ceil(cx + half)),
        min(h, math.ceil(cy + half)),
    )


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], margin: float) -> bool:
    return not (
        a[2] + margin <= b[0]
        or b[2] + margin <= a[0]
        or a[3] + margin <= b[1]
        or b[3] + margin <= a[1]
    )


def _free_spot(
    rng: np.random.Generator,
    candidates: tuple[NDArray[np.intp], ...],
    half: float,
    taken: list[tuple[int, int, int, int]],
    shape: tuple[int, int],
    margin: float,
) -> tuple[int, int] | None:
    """A random (row, column) among ``candidates`` whose box keeps ``margin`` from ``taken``."""
    ys, xs = candidates
    for _ in range(30):
        k = rng.integers(ys.size)
        cy, cx = int(ys[k]), int(xs[k])
        if not any(_overlaps(_box(cy, cx, half, *shape), t, margin) for t in taken):
            return cy, cx
    return None


def _lesions(
    rng: np.random.Generator,
    density: NDArray[np.float64],
    mask: NDArray[np.bool_],
    radius: NDArray[np.float64],
    label: int,
) -> tuple[tuple[Lesion, ...], tuple[tuple[int, int, int, int], ...]]:
    """Draw an image's lesions into ``density``; return them and healthy-tissue boxes."""
    h, w = density.shape
    if label == 1:
        kind = rng.choice(list(MALIGNANT_KIND), p=list(MALIGNANT_KIND.values()))
        classes = {
            "soft": ["malignant_soft_tissue"],
            "calcification": ["malignant_calcification"],
            "both": ["malignant_soft_tissue", "malignant_calcification"],
        }[str(kind)]
        n_benign = int(rng.random() < EXTRA_BENIGN)
    else:
        classes = []
        n_benign = int(rng.choice(3, p=BENIGN_COUNT))
    classes += [
        "benign_soft_tissue" if rng.random() < BENIGN_SOFT else "benign_calcification"
        for _ in range(n_benign)
    ]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # Spots whose box lies inside the frame, well inside the breast.
    inner = np.nonzero(mask & (radius < 0.7) & (xx > 0.06 * h) & (xx < w - 0.06 * h))
    drawn: list[Lesion] = []
    for name in classes:
        spot = _free_spot(rng, inner, 0.06 * h, [d.box for d in drawn], (h, w), 0.0)
        if spot is None:
            continue
        cy, cx = spot
        if name == "benign_soft_tissue":
            half = _benign_mass(rng, density, yy, xx, cy, cx, h)
        elif name == "malignant_soft_tissue":
            half = _malignant_mass(rng, density, yy, xx, cy, cx, h)
        else:
            malignant = name == "malignant_calcification"
            half = _calcifications(rng, density, yy, xx, cy, cx, h, malignant=malignant)
        drawn.append(Lesion(name, _box(cy, cx, half, h, w)))
    healthy: list[tuple[int, int, int, int]] = []
    half = 0.03 * h
    for _ in range(1 + int(rng.choice(2, p=HEALTHY_COUNT))):
        taken = [d.box for d in drawn] + healthy
        spots = np.nonzero(mask & (radius < 0.75) & (xx > half) & (xx < w - half))
        spot = _free_spot(rng, spots, half, taken, (h, w), half)
        if spot is not None:
            healthy.append(_box(*spot, half, h, w))
    return tuple(drawn), tuple(healthy)


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    if not boxes:
        return None
    x0, y0, x1, y1 = zip(*boxes, strict=True)
    return min(x0), min(y0), max(x1), max(y1)


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
    lesions, healthy = _lesions(rng, density, mask, radius, label)
    density = np.where(mask, np.clip(density, 0.05, 1), 0.0)
    row, col = MARKERS[source]
    r0, c0 = int(row * height), int(col * width) if left else int((1 - col) * width)
    density[r0 : r0 + max(3, height // 40), max(0, c0 - width // 20) : c0] = 0.95
    signal = device.gain * density**device.gamma + rng.normal(0, device.noise, density.shape)
    top = 2**device.bits - 1
    stored = np.clip(0.03 + signal, 0, 1) * top
    if device.monochrome1:
        stored = top - stored
    box = _union([d.box for d in lesions if d.lesion_class.startswith("malignant")])
    return SynthImage(np.round(stored).astype(np.uint16), mask, box, lesions, healthy)


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
    annotate: tuple[str, str] | None = ANNOTATED,
    seed: int = 0,
) -> pd.DataFrame:
    """Write images and ``manifest.csv`` to ``out``; return the manifest.

    ``image_format`` is ``dcm`` or ``png``; ``compress`` (DICOM only) is ``j2k`` (JPEG 2000
    lossless) or ``rle``. Each segment gets at least ``min_per_label`` images of each label
    (rare labels scale to almost nothing). If the segment ``annotate`` is written, a subset of
    its images gets its lesions annotated in ``lesions.csv`` (see :func:`annotate_subset`). The
    same seed gives the same images.
    """
    if image_format not in ("dcm", "png"):
        raise InputError(f"image_format must be 'dcm' or 'png'; got {image_format!r}.")
    if compress not in (None, "j2k", "rle") or (compress and image_format != "dcm"):
        raise InputError(f"compress must be 'j2k' or 'rle' with DICOM images; got {compress!r}.")
    sizes = segment_sizes(scale, segments, min_per_label=min_per_label)  # checks the segments
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    drawn: list[SynthImage] = []  # of the annotated segment
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
            if (source, maker) == annotate:
                drawn.append(replace(image, pixels=image.pixels[:0], mask=image.mask[:0]))
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
    if annotate in sizes:
        ids = manifest.image_id[
            (manifest.source == annotate[0]) & (manifest.manufacturer == annotate[1])
        ]
        key = list(TABLE1).index(annotate)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key, 1)))
        write_csv(out / "lesions.csv", annotate_subset(rng, ids.tolist(), drawn))
    write_csv(out / "manifest.csv", manifest)
    return manifest


def annotate_subset(
    rng: np.random.Generator, image_ids: Sequence[str], images: Sequence[SynthImage]
) -> pd.DataFrame:
    """The lesion table (``segtrain.lesions``) of a random subset of one segment's images.

    As in Table 8, scaled to the segment's size: for each class, that share of the images is
    chosen among those holding such a lesion (healthy tissue: among benign images), and their
    lesions of that class are listed. An image may be annotated for several classes.
    """
    total = sum(TABLE1[ANNOTATED])
    rows = []
    for name, count in TABLE8_IMAGES.items():
        if name == "healthy_tissue":
            has = [i for i, im in enumerate(images) if im.box is None and im.healthy]
        else:
            has = [
                i for i, im in enumerate(images) if any(d.lesion_class == name for d in im.lesions)
            ]
        n = min(len(has), max(1, round(count * len(images) / total)))
        for i in sorted(rng.choice(has, size=n, replace=False).tolist()) if has else []:
            boxes = (
                images[i].healthy
                if name == "healthy_tissue"
                else [d.box for d in images[i].lesions if d.lesion_class == name]
            )
            rows += [(image_ids[i], name, *b) for b in boxes]
    table = pd.DataFrame(rows, columns=["image_id", "lesion_class", "x0", "y0", "x1", "y1"])
    order = {image_id: k for k, image_id in enumerate(image_ids)}
    return table.sort_values("image_id", key=lambda c: c.map(order), kind="stable").reset_index(
        drop=True
    )
