"""Reading images: DICOM (with its LUTs), 8/16-bit PNG, and .npy, as float32 arrays.

Every reader returns a 2-D float32 array in which higher values are brighter (denser tissue),
whatever the file's photometric interpretation. DICOM pixel data goes through pydicom's
decoders (the pylibjpeg plugins handle JPEG lossless, JPEG-LS, JPEG 2000 and RLE), then the
modality LUT (or rescale slope/intercept), then the VOI LUT or window centre/width, then
inversion for MONOCHROME1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from segeval.validation import InputError

SUFFIXES = (".dcm", ".dicom", ".png", ".npy")


class ImageError(InputError):
    """An image file that cannot be read as a grayscale image; the message names the file."""


def read_image(path: str | Path) -> NDArray[np.float32]:
    """Read one image by its extension (``.dcm``/``.dicom``, ``.png``, ``.npy``)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".dcm", ".dicom"):
        image = read_dicom(p)
    elif suffix == ".png":
        image = read_png(p)
    elif suffix == ".npy":
        image = read_npy(p)
    else:
        raise ImageError(
            f"The image {str(p)!r} must be .dcm, .png or .npy; got {suffix or 'none'!r}."
        )
    if not np.isfinite(image).all():
        raise ImageError(f"The image {str(p)!r} has NaN or infinite pixels.")
    return image


def read_dicom(path: str | Path) -> NDArray[np.float32]:
    """Decode a single-frame grayscale DICOM and apply its modality and VOI transforms."""
    import pydicom
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for corrupt or unsupported files
        raise ImageError(f"The DICOM file {str(path)!r} cannot be decoded ({exc}).") from exc
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if pixels.ndim != 2 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageError(
            f"The DICOM file {str(path)!r} must hold one grayscale frame; got shape "
            f"{pixels.shape} and photometric interpretation {photometric or 'none'!r}."
        )
    values = apply_modality_lut(pixels, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        values = apply_voi_lut(values, ds)
    values = np.asarray(values, dtype=np.float32)
    if photometric == "MONOCHROME1":
        # Low values are white in MONOCHROME1: invert within the image's own range.
        values = values.max() + values.min() - values
    return values


def read_png(path: str | Path) -> NDArray[np.float32]:
    """An 8- or 16-bit grayscale PNG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
            pixels = np.asarray(image)
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"The PNG file {str(path)!r} is too large to decode safely ({exc})."
        ) from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise ImageError(f"The PNG file {str(path)!r} cannot be read ({exc}).") from exc
    if pixels.ndim != 2:
        raise ImageError(f"The PNG file {str(path)!r} must be grayscale; got mode {mode!r}.")
    return pixels.astype(np.float32)


def read_npy(path: str | Path) -> NDArray[np.float32]:
    """A 2-D numeric array saved with numpy."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ImageError(f"The array file {str(path)!r} cannot be read ({exc}).") from exc
    if array.ndim != 2 or array.dtype.kind not in "iuf":
        raise ImageError(
            f"The array file {str(path)!r} must hold a 2-D numeric image; got shape "
            f"{array.shape} and dtype {array.dtype}."
        )
    return np.asarray(array, dtype=np.float32)
