"""The data of a training run: the manifest (or its ``--segments``), split into train and val.

Everything here is checked before a run writes anything: the manifest, the segment names, the
size of prepared arrays against ``--image-size``, the split, and the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from segeval import Segments, segment_keys
from segeval.validation import InputError
from segtrain.config import TrainConfig
from segtrain.dataset import is_prepared
from segtrain.manifest import read_manifest
from segtrain.selection import parse_segment_name, parse_segment_names, rows_of
from segtrain.split import split_patients


@dataclass
class Data:
    """The manifest split into training and validation rows, with their segments."""

    manifest: pd.DataFrame
    segments: Segments
    train: np.ndarray
    val: np.ndarray
    root: Path
    segment: str | None = None  # the single-segment DS, by its display name


def load_data(config: TrainConfig) -> Data:
    """Read and split the manifest (only the ``--segments`` DSs); InputError on bad input."""
    manifest, segments = read_manifest(config.manifest, config.segment_by)
    assert segments is not None
    if config.segments:
        keep = rows_of(segments, parse_segment_names(config.segments, segments, "--segments"))
        manifest = manifest[keep].reset_index(drop=True)
        segments = segment_keys(manifest, config.segment_by)
    segment = None
    if config.segment is not None:
        segment = parse_segment_name(config.segment, segments, "--segment")
    _check_prepared_size(manifest, config)
    split = split_patients(
        manifest, by=config.split_by, val_fraction=config.val_fraction, seed=config.seed
    )
    manifest = manifest.assign(split=split.to_numpy())
    train = np.flatnonzero(split.to_numpy() == "train")
    val = np.flatnonzero(split.to_numpy() == "val")
    if train.size == 0 or val.size == 0:
        raise InputError(
            f"The split leaves {train.size} training and {val.size} validation "
            f"images; both are needed."
        )
    if config.batch_size > train.size:
        raise InputError(
            f"--batch-size {config.batch_size} is larger than the training set ({train.size} "
            f"images); give at most {train.size}."
        )
    return Data(manifest, segments, train, val, Path(config.manifest).parent, segment)


def _check_prepared_size(manifest: pd.DataFrame, config: TrainConfig) -> None:
    if not (is_prepared(manifest) and {"height", "width"} <= set(manifest.columns)):
        return
    sizes = set(zip(manifest["height"], manifest["width"], strict=True))
    wanted = (config.image_height, config.image_width)
    if sizes != {wanted}:
        found = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        raise InputError(
            f"The arrays of {config.manifest!r} are {found}, not --image-size "
            f"{wanted[0]}x{wanted[1]}: leave --image-size out to use theirs, or run segtrain "
            f"prepare again at that size."
        )
