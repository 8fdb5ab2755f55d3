"""``fit``: the paper's training loop, on CPU, one GPU or many (torchrun).

Batches come from the periodic sampler (or a baseline strategy); Adam on the cross-entropy of
the two logits; an EMA of the weights is validated every ``val_every`` steps, globally and per
segment with segeval; the checkpoint with the lowest global validation WLL is ``best.pt``, the
latest ``last.pt`` (for resume). At the end, ``preds/val.parquet`` holds the predictions of
``best.pt`` on the validation set. Only rank 0 writes.

``fit`` is one use of the run skeleton (:mod:`segtrain.loop`), ``pretrain`` the other:
:func:`build` makes every object of a run (checking all input before anything is written) and
:class:`FitTask` says what fit's batches, loss, validation and final outputs are.
"""

from __future__ import annotations

import signal
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from segeval import Segments, segment_table
from segeval.io import write_parquet
from segtrain import distributed
from segtrain.augment import AugmentConfig, augment
from segtrain.checkpoint import load_backbone, load_checkpoint
from segtrain.config import RunConfig, TrainConfig
from segtrain.data import Data, load_data
from segtrain.dataset import ManifestDataset, is_prepared
from segtrain.ema import ModelEMA
from segtrain.inference import evaluate, prediction_frame
from segtrain.loop import Run, TrainingError, execute, train_step, wrap_model
from segtrain.manifest import lesion_boxes
from segtrain.model import Classifier
from segtrain.sampler import BatchStream, PeriodicBatchSampler
from segtrain.state import TrainState

__all__ = ["FitTask", "TrainingError", "build", "build_model", "fit", "new_state", "train_step"]


def _subset_segments(segments: Segments, rows: np.ndarray) -> np.ndarray:
    names = np.asarray(segments.names, dtype=object)
    return np.asarray(names[segments.codes[rows]])


def build_model(config: TrainConfig) -> Classifier:
    model = Classifier((config.image_height, config.image_width), config.width)
    if config.init_backbone:
        load_backbone(model.backbone, config.init_backbone)  # shapes checked: one clear message
    return model


@dataclass(frozen=True)
class Validation:
    loader: DataLoader[Any]  # this rank's share of the validation images
    labels: np.ndarray  # all validation images, in order
    segments: np.ndarray


@dataclass(frozen=True)
class Augmentation:
    """How a training batch is augmented: the ranges, each row's lesion box and background."""

    config: AugmentConfig
    boxes: torch.Tensor  # (n, 4) per manifest row, NaN where none
    background: torch.Tensor  # (n,) per manifest row


class FitTask:
    """fit's part of a run: augmented image batches, cross-entropy, validation per segment,
    and the validation predictions of best.pt at the end."""

    def __init__(
        self,
        ctx: distributed.Context,
        data: Data,
        val: Validation,
        augmentation: Augmentation | None,
    ) -> None:
        self.ctx, self.data, self.val, self.augmentation = ctx, data, val, augmentation

    def batch(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels, rows = batch
        images = images.to(self.ctx.device, non_blocking=True)
        if self.ctx.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        aug = self.augmentation
        if aug is not None:
            images = augment(
                images,
                boxes=aug.boxes[rows],
                background=aug.background[rows],
                cfg=aug.config,
                generator=generator,
            )
        return images, labels.to(self.ctx.device)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def validate(self, state: TrainState) -> list[dict[str, Any]]:
        scores = evaluate(state.ema.module, self.val.loader, self.ctx)
        return validation_records(state.step, self.val.labels, scores, self.val.segments)

    def split(self) -> pd.DataFrame:
        return self.data.manifest[["image_id", "split"]].reset_index(drop=True)

    def start(self, out: Path) -> None:
        pass  # config.toml and split.parquet are all fit writes first

    def finish(self, run: Run) -> None:
        _write_val_predictions(run, self)


@dataclass
class FitRun(Run):
    """A fit run: the skeleton's objects, and fit's data."""

    data: Data


def build(
    config: TrainConfig, ctx: distributed.Context, checkpoint: dict[str, Any] | None = None
) -> FitRun:
    """Make every object of a run (restored from ``checkpoint``); writes nothing."""
    data = load_data(config)
    if ctx.is_main and not is_prepared(data.manifest):
        warnings.warn(unprepared_hint(config), UserWarning, stacklevel=2)
    sampler = PeriodicBatchSampler(
        data.manifest["label"].to_numpy()[data.train],
        _subset_segments(data.segments, data.train),
        batch_size=config.batch_size // ctx.world_size,
        strategy=config.strategy,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        segment=data.segment,
    )
    torch.manual_seed(config.seed)  # the initial weights, the same on every rank
    model = build_model(config).to(ctx.device)
    if ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    state = new_state(model, config, ctx, sampler)
    if checkpoint is not None:
        state.restore(checkpoint, ctx.rank)
    loader, val = _loaders(config, ctx, data, sampler)
    augmentation = _augmentation(config, data) if config.augment else None
    task = FitTask(ctx, data, val, augmentation)
    step_model = wrap_model(model, ctx, compile=config.compile)
    return FitRun(config, ctx, state, step_model, loader, task, data)


def unprepared_hint(config: TrainConfig) -> str:
    """fit's one warning for a manifest that ``segtrain prepare`` did not write: how to prepare."""
    size = f"{config.image_height}x{config.image_width}"
    return (
        f"{config.manifest!r} is not from segtrain prepare, so every image is read and "
        f"preprocessed at {size} each time a batch draws it (at the default 1152x832, about one "
        f"image a second on a CPU): run `segtrain prepare --manifest {config.manifest} --out "
        f"cache --height {config.image_height} --width {config.image_width}` once (a smaller "
        f"size trains faster; each side at least 190) and fit on cache/manifest.csv."
    )


def new_state(
    model: torch.nn.Module, config: RunConfig, ctx: distributed.Context, sampler: BatchStream
) -> TrainState:
    """A fresh state (fit's and pretrain's): the EMA of ``model``, batch norm over the global
    batch under torchrun, Adam, and the augmentation RNG of this rank."""
    ema = ModelEMA(model, config.ema_decay)
    if ctx.world_size > 1:
        distributed.convert_batchnorm(model, ctx.device)  # in place
    generator = torch.Generator().manual_seed(config.seed * 1000 + ctx.rank)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return TrainState(model, ema, optimizer, sampler, generator)


def _loaders(
    config: TrainConfig, ctx: distributed.Context, data: Data, sampler: PeriodicBatchSampler
) -> tuple[DataLoader[Any], Validation]:
    dataset = ManifestDataset(
        data.manifest, data.root, height=config.image_height, width=config.image_width
    )
    # The sampler yields positions in data.train; the dataset returns manifest rows.
    loader = DataLoader(
        Subset(dataset, data.train.tolist()),
        batch_sampler=sampler,
        num_workers=config.workers,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=config.workers > 0,
        worker_init_fn=_ignore_ctrl_c,
    )
    val_local = data.val[distributed.shard(data.val.size, ctx)]
    val_loader = DataLoader(
        Subset(dataset, val_local.tolist()),
        batch_size=32,
        num_workers=config.workers,
        worker_init_fn=_ignore_ctrl_c,
    )
    labels = data.manifest["label"].to_numpy()[data.val]
    return loader, Validation(val_loader, labels, _subset_segments(data.segments, data.val))


def _ignore_ctrl_c(worker_id: int) -> None:
    # Ctrl-C reaches every process of the terminal's group; the main process handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _augmentation(config: TrainConfig, data: Data) -> Augmentation:
    prepared = is_prepared(data.manifest)
    n = len(data.manifest)
    return Augmentation(
        AugmentConfig(
            config.rotation,
            (config.zoom_min, config.zoom_max),
            config.shear,
            config.hflip,
            config.vflip,
        ),
        torch.tensor(lesion_boxes(data.manifest) if prepared else np.full((n, 4), np.nan)),
        torch.tensor(
            data.manifest["background"].to_numpy(float) if prepared else np.zeros(n),
            dtype=torch.float32,
        ),
    )


def batch_to_device(
    batch: Any, run: FitRun, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch as (images, labels) on the device, augmented if the run augments."""
    task = run.task
    assert isinstance(task, FitTask)
    return task.batch(batch, generator)


def validation_records(
    step: int, y: np.ndarray, scores: np.ndarray, segments: np.ndarray
) -> list[dict[str, Any]]:

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-class segments: NaN, recorded as such
        table = segment_table(y, scores, segments)
    return [
        {
            "step": step,
            "segment": segment,
            "wll": float(wll),
            "auc": float(auc),
            "n_pos": int(n_pos),
            "n_neg": int(n_neg),
        }
        for segment, wll, auc, n_pos, n_neg in zip(
            table["segment"],
            table["wll"],
            table["auc"],
            table["n_pos"],
            table["n_neg"],
            strict=True,
        )
    ]


def fit(
    config: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> Path:
    """Train as ``config`` says; return the run folder.

    Every input is checked before the run folder is written. Ctrl-C finishes the current step,
    writes last.pt and raises :class:`segtrain.stop.Interrupted`.
    """
    return execute(config, build, resume=resume, overwrite=overwrite, progress=progress)


def _write_val_predictions(run: Run, task: FitTask) -> None:
    out = Path(run.config.out)
    best_path = out / "checkpoints" / "best.pt"
    if not best_path.is_file():  # every validation WLL was undefined
        return
    ema = run.state.ema
    ema.load_state_dict(load_checkpoint(best_path)["ema"])
    scores = evaluate(ema.module, task.val.loader, run.ctx)
    if run.ctx.is_main:
        rows = task.data.manifest.iloc[task.data.val]
        preds = prediction_frame(rows, scores, out.name, run.config.segment_by)
        write_parquet(out / "preds" / "val.parquet", preds)
