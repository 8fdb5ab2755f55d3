"""Inference: a model's probability of label 1 on a loader, and the predictions file format.

Shared by the training loop (validation, ``preds/val.parquet``) and ``segtrain predict``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from segeval import parse_segment_by
from segtrain import distributed


def autocast(ctx: distributed.Context) -> contextlib.AbstractContextManager[Any]:
    """bf16 on GPUs; full precision on CPUs (deterministic, and as fast at these sizes)."""
    if ctx.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def evaluate(
    model: torch.nn.Module, loader: DataLoader[Any], ctx: distributed.Context
) -> np.ndarray:
    """Probability of label 1 for every sample of ``loader``'s dataset (gathered over ranks)."""
    return probabilities(model, loader, ctx, 2)[:, 1]


def probabilities(
    model: torch.nn.Module, loader: DataLoader[Any], ctx: distributed.Context, classes: int
) -> np.ndarray:
    """(n, classes) softmax probabilities of every sample of ``loader``'s dataset, gathered over
    the ranks in rank order (each rank's loader holds a contiguous share)."""
    model.eval()
    probs = []
    with torch.no_grad(), autocast(ctx):
        for images, *_ in loader:
            logits = model(images.to(ctx.device, non_blocking=True))
            probs.append(torch.softmax(logits.float(), dim=1).reshape(-1))
    local = torch.cat(probs) if probs else torch.zeros(0, device=ctx.device)
    gathered = distributed.all_gather_concat(local).cpu().numpy().astype(np.float64)
    return gathered.reshape(-1, classes)


def prediction_frame(
    rows: pd.DataFrame, scores: np.ndarray, model_name: str, segment_by: str
) -> pd.DataFrame:
    """The predictions contract: image_id, model, label, score, patient_id, segment columns."""
    columns = [c.name for c in parse_segment_by(segment_by)]
    keep = ["image_id", "patient_id", *[c for c in columns if c in rows]]
    frame = rows[keep].reset_index(drop=True).copy()
    frame.insert(1, "model", model_name)
    frame.insert(2, "label", rows["label"].to_numpy(np.int8))
    frame.insert(3, "score", scores)
    return frame
