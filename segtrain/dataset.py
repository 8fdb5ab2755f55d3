"""``ManifestDataset``: the images of a manifest as (image tensor, label, index) samples.

A manifest written by ``segtrain prepare`` points at preprocessed arrays (``.npy`` of the final
size, with a ``background`` column): they are loaded as they are. Any other manifest points at
raw images, which are read and preprocessed on the fly (the same code path as ``prepare``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from segeval.validation import InputError
from segtrain.images import read_image, read_npy
from segtrain.preprocess import HEIGHT, TARGET_MEAN, WIDTH, preprocess


def is_prepared(manifest: pd.DataFrame) -> bool:
    """Whether a manifest is the output of ``segtrain prepare``."""
    return "background" in manifest


class ManifestDataset(Dataset[tuple[torch.Tensor, int, int]]):
    """Samples ``(image (1, H, W) float32, label, row index)`` of a manifest's rows.

    Paths are relative to ``root`` (the manifest's folder).
    """

    def __init__(
        self,
        manifest: pd.DataFrame,
        root: str | Path,
        *,
        height: int = HEIGHT,
        width: int = WIDTH,
        target_mean: float = TARGET_MEAN,
    ) -> None:
        self.paths = [Path(root) / p for p in manifest["path"].astype(str)]
        self.labels = manifest["label"].to_numpy(dtype=np.int64)
        self.prepared = is_prepared(manifest)
        self.height, self.width, self.target_mean = height, width, target_mean

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        if self.prepared:
            image = read_npy(self.paths[index])
        else:
            image = preprocess(
                read_image(self.paths[index]),
                height=self.height,
                width=self.width,
                target_mean=self.target_mean,
            ).image
        if image.shape != (self.height, self.width):
            raise InputError(
                f"{str(self.paths[index])!r} has shape {image.shape}; expected "
                f"{(self.height, self.width)} (prepare the cache with the same image size)."
            )
        return torch.from_numpy(image)[None], int(self.labels[index]), index
