"""``segtrain predict``: a checkpoint's EMA model scores a manifest; writes the predictions file.

The output follows the predictions contract (image_id, model, label, score, patient_id, segment
columns) and feeds ``segeval report`` directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from segeval.io import write_csv, write_parquet
from segtrain.checkpoint import load_checkpoint
from segtrain.config import TrainConfig
from segtrain.dataset import ManifestDataset
from segtrain.distributed import Context
from segtrain.manifest import read_manifest
from segtrain.model import Classifier
from segtrain.train import evaluate, prediction_frame


def predict(
    checkpoint: str | Path,
    manifest: str | Path,
    out: str | Path,
    *,
    model_name: str,
    device: str = "auto",
    batch_size: int = 32,
    workers: int = 0,
) -> pd.DataFrame:
    """Score every image of ``manifest`` with the EMA weights of ``checkpoint``."""
    state = load_checkpoint(checkpoint)
    config = TrainConfig(**state["config"])
    df, _ = read_manifest(manifest)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ctx = Context(0, 1, torch.device(device))
    model = Classifier((config.image_height, config.image_width), config.width)
    model.load_state_dict(state["ema"]["module"])
    model.to(ctx.device)
    dataset = ManifestDataset(
        df, Path(manifest).parent, height=config.image_height, width=config.image_width
    )
    scores = evaluate(model, DataLoader(dataset, batch_size=batch_size, num_workers=workers), ctx)
    preds = prediction_frame(df, np.clip(scores, 0, 1), model_name, config.segment_by)
    (write_csv if str(out).lower().endswith(".csv") else write_parquet)(out, preds)
    return preds
