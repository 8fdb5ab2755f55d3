"""``segtrain predict``: a checkpoint's EMA model scores a manifest; writes the predictions file.

The output follows the predictions contract (image_id, model, label, score, patient_id, segment
columns) and feeds ``segeval report`` directly. ``split`` picks the rows of one side: from the
manifest's ``split`` column, or, for ``train``/``val``, from the run's ``split.parquet`` beside
the checkpoint's folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from segeval.io import write_csv, write_parquet
from segeval.validation import InputError
from segtrain.checkpoint import load_checkpoint
from segtrain.dataset import ManifestDataset
from segtrain.distributed import Context, resolve_device
from segtrain.inference import evaluate, prediction_frame
from segtrain.manifest import read_manifest
from segtrain.model import Classifier
from segtrain.rundir import config_of
from segtrain.selection import parse_segment_names, rows_of

SPLITS = ("all", "train", "val", "test")
SUFFIXES = (".parquet", ".csv")


def predict(
    checkpoint: str | Path,
    manifest: str | Path,
    out: str | Path,
    *,
    model_name: str,
    device: str = "auto",
    batch_size: int = 32,
    workers: int = 0,
    split: str = "all",
    segments: str | None = None,
) -> pd.DataFrame:
    """Score the images of ``manifest`` (those of ``split`` and ``segments``) with the EMA
    weights of ``checkpoint``; write them to ``out`` (.parquet or .csv) and return them."""
    if Path(out).suffix.lower() not in SUFFIXES:
        raise InputError(f"--out must end in .parquet or .csv; got {str(out)!r}.")
    if split not in SPLITS:
        raise InputError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}.")
    ctx = Context(0, 1, torch.device(resolve_device(device)))
    state = load_checkpoint(checkpoint)
    config = config_of(state, Path(checkpoint))
    model = Classifier((config.image_height, config.image_width), config.width)
    try:
        model.load_state_dict(state["ema"]["module"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise InputError(
            f"The checkpoint {str(checkpoint)!r} does not hold the weights its config describes."
        ) from exc
    df, seg = read_manifest(manifest, config.segment_by if segments else None)
    keep = _split_rows(df, split, Path(checkpoint))
    if segments:
        assert seg is not None
        keep = keep & rows_of(seg, parse_segment_names(segments, seg, "--segments"))
    df = df[keep].reset_index(drop=True)
    if df.empty:
        raise InputError(f"No image of {str(manifest)!r} is in --split {split} and --segments.")
    dataset = ManifestDataset(
        df, Path(manifest).parent, height=config.image_height, width=config.image_width
    )
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    scores = evaluate(model.to(ctx.device), loader, ctx)
    preds = prediction_frame(df, np.clip(scores, 0, 1), model_name, config.segment_by)
    (write_csv if str(out).lower().endswith(".csv") else write_parquet)(out, preds)
    return preds


def _split_rows(df: pd.DataFrame, split: str, checkpoint: Path) -> np.ndarray:
    """Whether each row is in ``split``."""
    if split == "all":
        return np.ones(len(df), dtype=bool)
    if "split" in df:
        return (df["split"].astype(str) == split).to_numpy()
    saved = checkpoint.parent.parent / "split.parquet"
    if split == "test" or not saved.is_file():
        raise InputError(
            f"--split {split} needs a 'split' column in the manifest"
            + ("" if split == "test" else f" or the run's {str(saved)!r}")
            + "."
        )
    sides = pd.read_parquet(saved).set_index("image_id")["split"]
    return df["image_id"].map(sides).eq(split).to_numpy()
