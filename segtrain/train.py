"""``fit``: the paper's training loop, on CPU, one GPU or many (torchrun).

Batches come from the periodic sampler (or a baseline strategy); Adam on the cross-entropy of
the two logits; an EMA of the weights is validated every ``val_every`` steps, globally and per
segment with segeval; the checkpoint with the lowest global validation WLL is ``best.pt``, the
latest ``last.pt`` (for resume). At the end, ``preds/val.parquet`` holds the predictions of
``best.pt`` on the validation set. Only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from segeval import segment_table
from segeval.io import to_jsonable, write_parquet, write_text
from segeval.segments import GLOBAL, Segments
from segeval.validation import InputError
from segtrain import distributed
from segtrain.augment import AugmentConfig, augment
from segtrain.checkpoint import load_backbone, load_checkpoint, save_checkpoint
from segtrain.config import TrainConfig, to_toml
from segtrain.dataset import ManifestDataset, is_prepared
from segtrain.ema import ModelEMA
from segtrain.manifest import lesion_boxes, read_manifest
from segtrain.model import Classifier
from segtrain.sampler import PeriodicBatchSampler
from segtrain.split import split_patients


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss); the message says what was kept."""


@dataclass
class Data:
    """The manifest split into training and validation rows, with their segments."""

    manifest: pd.DataFrame
    segments: Segments
    train: np.ndarray
    val: np.ndarray
    root: Path


@dataclass
class TrainState:
    """What a checkpoint restores: the model, its EMA, the optimizer, the sampler position, the
    augmentation RNG, the step, the best global validation WLL, and the validation records."""

    model: torch.nn.Module
    ema: ModelEMA
    optimizer: torch.optim.Optimizer
    sampler: PeriodicBatchSampler
    generator: torch.Generator
    step: int = 0
    best_wll: float = math.inf
    records: list[dict[str, Any]] = field(default_factory=list)

    def checkpoint(self, config: TrainConfig, ctx: distributed.Context) -> dict[str, Any]:
        """The checkpoint dict (a collective under torchrun: every rank must call it)."""
        return {
            "config": config.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": _gather_objects(self.sampler.state_dict(), ctx),
            "rng": {"augment": _gather_objects(self.generator.get_state(), ctx)},
            "best_wll": self.best_wll,
            "records": json.dumps(to_jsonable(self.records)),
        }

    def restore(self, checkpoint: dict[str, Any], rank: int) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.ema.load_state_dict(checkpoint["ema"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.sampler.load_state_dict(checkpoint["sampler"][rank])
        self.generator.set_state(checkpoint["rng"]["augment"][rank])
        self.step = int(checkpoint["step"])
        self.best_wll = float(checkpoint["best_wll"])
        self.records = json.loads(checkpoint["records"])


def load_data(config: TrainConfig) -> Data:
    manifest, segments = read_manifest(config.manifest, config.segment_by)
    assert segments is not None
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
    return Data(manifest, segments, train, val, Path(config.manifest).parent)


def _subset_segments(segments: Segments, rows: np.ndarray) -> np.ndarray:
    return np.asarray(segments.names, dtype=object)[segments.codes[rows]]


def build_model(config: TrainConfig) -> Classifier:
    model = Classifier((config.image_height, config.image_width), config.width)
    if config.init_backbone:
        load_backbone(model.backbone, config.init_backbone)  # shapes checked: one clear message
    return model


def prepare_run_dir(config: TrainConfig, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check the run folder; return the checkpoint to resume from, if any."""
    out = Path(config.out)
    saved = out / "config.toml"
    last = out / "checkpoints" / "last.pt"
    if resume:
        if not saved.is_file() or not last.is_file():
            raise InputError(
                f"--resume: {str(out)!r} is not a segtrain run (no config.toml and "
                f"checkpoints/last.pt)."
            )
        state = load_checkpoint(last)
        previous = TrainConfig(**state["config"])
        changed = previous.differences(config)
        if changed:
            raise InputError(
                f"--resume: the run {str(out)!r} was made with other settings: "
                f"{', '.join(changed)}."
            )
        return state
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(
                f"The output folder {str(out)!r} is not empty; give --resume to "
                f"continue that run or --overwrite to replace it."
            )
        for name in ("checkpoints", "preds", "metrics.jsonl", "config.toml", "split.parquet"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return None


def evaluate(
    model: torch.nn.Module, loader: DataLoader[Any], ctx: distributed.Context
) -> np.ndarray:
    """Probability of label 1 for every sample of ``loader``'s dataset (gathered over ranks)."""
    model.eval()
    scores = []
    with torch.no_grad(), _autocast(ctx):
        for images, _, _ in loader:
            logits = model(images.to(ctx.device, non_blocking=True))
            scores.append(torch.softmax(logits.float(), dim=1)[:, 1])
    local = torch.cat(scores) if scores else torch.zeros(0, device=ctx.device)
    return distributed.all_gather_concat(local).cpu().numpy().astype(np.float64)


def _autocast(ctx: distributed.Context) -> Any:
    # bf16 on GPUs; on CPUs full precision (deterministic and as fast at these sizes).
    if ctx.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _shard(n: int, ctx: distributed.Context) -> np.ndarray:
    """Contiguous share of range(n) for this rank; shares concatenate to range(n) in order."""
    bounds = np.linspace(0, n, ctx.world_size + 1).round().astype(int)
    return np.arange(bounds[ctx.rank], bounds[ctx.rank + 1])


def validation_records(
    step: int, y: np.ndarray, scores: np.ndarray, segments: np.ndarray
) -> list[dict[str, Any]]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-class segments: NaN, recorded as such
        table = segment_table(y, scores, segments)
    return [
        {
            "step": step,
            "segment": r.segment,
            "wll": float(r.wll),
            "auc": float(r.auc),
            "n_pos": int(r.n_pos),
            "n_neg": int(r.n_neg),
        }
        for r in table.itertuples()
    ]


def fit(
    config: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> Path:
    """Train as ``config`` says; return the run folder."""
    ctx = distributed.setup(config.device)
    try:
        return _fit(config, ctx, resume=resume, overwrite=overwrite, progress=progress)
    finally:
        distributed.teardown()


def _fit(
    config: TrainConfig, ctx: distributed.Context, *, resume: bool, overwrite: bool, progress: bool
) -> Path:
    out = Path(config.out)
    if config.batch_size % ctx.world_size:
        raise InputError(
            f"batch-size {config.batch_size} does not split over {ctx.world_size} processes."
        )
    if ctx.device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    state, error = None, None
    if ctx.is_main:
        try:
            state = prepare_run_dir(config, resume=resume, overwrite=overwrite)
        except InputError as exc:
            error = str(exc)
    if ctx.world_size > 1:
        # Rank 0 checked the run folder: every rank stops with its message, none waits forever.
        shared = [error]
        torch.distributed.broadcast_object_list(shared, src=0)
        error = shared[0]
    if error is not None:
        raise InputError(error)
    if resume and not ctx.is_main:
        state = load_checkpoint(out / "checkpoints" / "last.pt")
    data = load_data(config)
    if ctx.is_main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        write_text(out / "config.toml", to_toml(config))
        write_parquet(
            out / "split.parquet", data.manifest[["image_id", "split"]].reset_index(drop=True)
        )

    dataset = ManifestDataset(
        data.manifest, data.root, height=config.image_height, width=config.image_width
    )
    prepared = is_prepared(data.manifest)
    boxes = torch.tensor(
        lesion_boxes(data.manifest) if prepared else np.full((len(data.manifest), 4), np.nan)
    )
    background = torch.tensor(
        data.manifest["background"].to_numpy(float) if prepared else np.zeros(len(data.manifest)),
        dtype=torch.float32,
    )
    sampler = PeriodicBatchSampler(
        data.manifest["label"].to_numpy()[data.train],
        _subset_segments(data.segments, data.train),
        batch_size=config.batch_size // ctx.world_size,
        strategy=config.strategy,  # type: ignore[arg-type]
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        segment=config.segment,
    )
    torch.manual_seed(config.seed)  # the initial weights, the same on every rank
    model = build_model(config).to(ctx.device)
    if ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    ema = ModelEMA(model, config.ema_decay)
    if ctx.world_size > 1:
        distributed.convert_batchnorm(model)
    train = TrainState(
        model,
        ema,
        torch.optim.Adam(model.parameters(), lr=config.lr),
        sampler,
        torch.Generator().manual_seed(config.seed * 1000 + ctx.rank),
    )
    if state is not None:
        train.restore(state, ctx.rank)
    train_model: torch.nn.Module = model
    if ctx.world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model)
    if config.compile:
        train_model = torch.compile(train_model)  # type: ignore[assignment]

    # The sampler yields positions in data.train; the dataset returns manifest rows.
    loader = DataLoader(
        Subset(dataset, data.train.tolist()),
        batch_sampler=sampler,
        num_workers=config.workers,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=config.workers > 0,
    )
    val_local = data.val[_shard(data.val.size, ctx)]
    val_loader = DataLoader(
        Subset(dataset, val_local.tolist()), batch_size=32, num_workers=config.workers
    )
    aug = AugmentConfig(
        config.rotation,
        (config.zoom_min, config.zoom_max),
        config.shear,
        config.hflip,
        config.vflip,
    )
    val = _Validation(
        val_loader,
        data.manifest["label"].to_numpy()[data.val],
        _subset_segments(data.segments, data.val),
    )
    bar = _progress_bar(config, train.step, ctx, progress)
    batches = iter(loader)
    seen, started = 0, time.perf_counter()
    while train.step < config.steps:
        train_model.train()
        images, labels, rows = next(batches)
        images = images.to(ctx.device, non_blocking=True)
        if ctx.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        if config.augment:
            images = augment(
                images,
                boxes=boxes[rows],
                background=background[rows],
                cfg=aug,
                generator=train.generator,
            )
        with _autocast(ctx):
            logits = train_model(images)
        loss = F.cross_entropy(logits.float(), labels.to(ctx.device))
        if not torch.isfinite(loss):
            raise TrainingError(
                f"The loss is {loss.item()} at step {train.step + 1}; training stopped. The last "
                f"good checkpoint is {str(out / 'checkpoints' / 'last.pt')!r} (step of the last "
                f"validation)."
            )
        train.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        train.optimizer.step()
        ema.update(model)
        train.step += 1
        seen += images.shape[0] * ctx.world_size
        if bar is not None:
            bar.update()
            bar.set_postfix(
                loss=f"{loss.item():.4f}", img_s=f"{seen / (time.perf_counter() - started):.1f}"
            )
        if train.step % config.val_every == 0 or train.step == config.steps:
            _validate_and_save(train, val, config, ctx)
    if bar is not None:
        bar.close()
    _write_val_predictions(config, data, ema, val_loader, ctx)
    return out


@dataclass(frozen=True)
class _Validation:
    loader: DataLoader[Any]  # this rank's share of the validation images
    labels: np.ndarray  # all validation images, in order
    segments: np.ndarray


def _validate_and_save(
    train: TrainState, val: _Validation, config: TrainConfig, ctx: distributed.Context
) -> None:
    """Validate the EMA weights; rank 0 logs the metrics and writes last.pt (and best.pt)."""
    scores = evaluate(train.ema.module, val.loader, ctx)
    new = validation_records(train.step, val.labels, scores, val.segments)
    train.records += new
    wll = next(r["wll"] for r in new if r["segment"] == GLOBAL)
    improved = math.isfinite(wll) and wll < train.best_wll
    if improved:
        train.best_wll = wll
    checkpoint = train.checkpoint(config, ctx)
    if ctx.is_main:
        folder = Path(config.out) / "checkpoints"
        if improved:
            save_checkpoint(folder / "best.pt", checkpoint)
        save_checkpoint(folder / "last.pt", checkpoint)
        write_text(
            Path(config.out) / "metrics.jsonl",
            "".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in train.records),
        )
    _barrier(ctx)  # every rank sees the checkpoints rank 0 has just written


def _barrier(ctx: distributed.Context) -> None:
    if ctx.world_size > 1:
        torch.distributed.barrier()


def _gather_objects(value: Any, ctx: distributed.Context) -> list[Any]:
    """The value of every rank, in rank order (one-element list in a single process)."""
    if ctx.world_size == 1:
        return [value]
    gathered: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def _progress_bar(config: TrainConfig, step: int, ctx: distributed.Context, progress: bool) -> Any:
    if not (progress and ctx.is_main):
        return None
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, silence in logs and CI.
    return tqdm(total=config.steps, initial=step, desc="fit", unit="step", disable=None)


def _write_val_predictions(
    config: TrainConfig,
    data: Data,
    ema: ModelEMA,
    val_loader: DataLoader[Any],
    ctx: distributed.Context,
) -> None:
    best_path = Path(config.out) / "checkpoints" / "best.pt"
    if not best_path.is_file():  # every validation WLL was undefined
        return
    ema.load_state_dict(load_checkpoint(best_path)["ema"])
    scores = evaluate(ema.module, val_loader, ctx)
    if ctx.is_main:
        rows = data.manifest.iloc[data.val]
        preds = prediction_frame(rows, scores, Path(config.out).name, config.segment_by)
        write_parquet(Path(config.out) / "preds" / "val.parquet", preds)


def prediction_frame(
    rows: pd.DataFrame, scores: np.ndarray, model_name: str, segment_by: str
) -> pd.DataFrame:
    """The predictions contract: image_id, model, label, score, patient_id, segment columns."""
    from segeval.segments import parse_segment_by

    columns = [c.name for c in parse_segment_by(segment_by)]
    keep = ["image_id", "patient_id", *[c for c in columns if c in rows]]
    frame = rows[keep].reset_index(drop=True).copy()
    frame.insert(1, "model", model_name)
    frame.insert(2, "label", rows["label"].to_numpy(np.int8))
    frame.insert(3, "score", scores)
    return frame
