"""Preprocessed 1152x832 images per second per core: from cached arrays against from DICOM.

Run:  python bench/data.py [--images 16] [--raw-height 2048]

Writes synthetic DICOMs of a full-field size (2048 x 1536 by default, 14-bit, JPEG 2000
lossless), prepares them once, then times on one core the two ways a training loop can get a
preprocessed image: decoding and preprocessing the DICOM (the peer), or loading the cached
array that `segtrain prepare` wrote.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from segtrain.dataset import ManifestDataset
from segtrain.prepare import prepare
from segtrain.synth import TABLE1, make_dataset


def rate(dataset: ManifestDataset, repeats: int) -> float:
    n = len(dataset)
    t = time.perf_counter()
    for _ in range(repeats):
        for k in range(n):
            dataset[k]
    return repeats * n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--raw-height", type=int, default=2048)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        scale = args.images / sum(TABLE1[("S1", "Mb")])
        make_dataset(
            raw,
            scale=scale,
            segments=[("S1", "Mb")],
            height=args.raw_height,
            width=args.raw_height * 3 // 4,
            compress="j2k",
        )
        manifest = pd.read_csv(raw / "manifest.csv")
        from_dicom = ManifestDataset(manifest, raw)
        prepared = prepare(raw / "manifest.csv", Path(tmp) / "cache", workers=1)
        from_cache = ManifestDataset(prepared, Path(tmp) / "cache")
        dicom_rate = rate(from_dicom, 1)
        cache_rate = rate(from_cache, 5)
    print(
        f"{len(manifest)} images, raw {args.raw_height} x {args.raw_height * 3 // 4} 14-bit "
        f"JPEG 2000 lossless DICOM -> 1152 x 832, one core"
    )
    print(f"from DICOM (decode + preprocess): {dicom_rate:.2f} images/s")
    print(
        f"from cached arrays (segtrain prepare, files in the page cache): {cache_rate:.1f} images/s"
    )
    print(f"ratio cache / DICOM: {cache_rate / dicom_rate:.0f}x")


if __name__ == "__main__":
    main()
