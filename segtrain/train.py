"""``fit``: the paper's training loop, on CPU, one GPU or many (torchrun).

Batches come from the periodic sampler (or a baseline strategy); Adam on the cross-entropy of
the two logits; an EMA of the weights is validated every ``val_every`` steps, globally and per
segment with segeval; the checkpoint with the lowest global validation WLL is ``best.pt``, the
latest ``last.pt`` (for resume). At the end, ``preds/val.parquet`` holds the predictions of
``best.pt`` on the validation set. Only rank 0 writes.

Three pieces, each usable alone: :func:`build` makes every object of a run (checking all input
before anything is written), :func:`train_step` is one optimizer step, and :func:`train_loop`
runs steps, validates and checkpoints. :func:`fit` wires them.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from segeval import GLOBAL, Segments, segment_table
from segeval.io import write_parquet
from segeval.validation import InputError
from segtrain import distributed
from segtrain.augment import AugmentConfig, augment
from segtrain.checkpoint import load_backbone, load_checkpoint, save_checkpoint
from segtrain.config import TrainConfig
from segtrain.data import Data, load_data
from segtrain.dataset import ManifestDataset, is_prepared
from segtrain.ema import ModelEMA
from segtrain.inference import autocast, evaluate, prediction_frame
from segtrain.logs import TrainLog, check_tensorboard
from segtrain.manifest import lesion_boxes
from segtrain.model import Classifier
from segtrain.rundir import (
    check_run_dir,
    discard_unstarted,
    last_checkpoint,
    start_run_dir,
    write_validation,
)
from segtrain.sampler import PeriodicBatchSampler
from segtrain.state import TrainState
from segtrain.stop import Interrupted, StopRequest


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss); the message says what was kept."""


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


@dataclass
class Run:
    """Every object of a training run, built by :func:`build`."""

    config: TrainConfig
    ctx: distributed.Context
    data: Data
    state: TrainState
    model: torch.nn.Module  # what the step calls: the model, under DDP and torch.compile
    loader: DataLoader[Any]
    val: Validation
    augmentation: Augmentation | None


def build(
    config: TrainConfig, ctx: distributed.Context, checkpoint: dict[str, Any] | None = None
) -> Run:
    """Make every object of a run (restored from ``checkpoint``); writes nothing."""
    if config.batch_size % ctx.world_size:
        raise InputError(
            f"--batch-size {config.batch_size} does not split over {ctx.world_size} processes."
        )
    data = load_data(config)
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
    ema = ModelEMA(model, config.ema_decay)
    if ctx.world_size > 1:
        distributed.convert_batchnorm(model, ctx.device)  # in place
    generator = torch.Generator().manual_seed(config.seed * 1000 + ctx.rank)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    state = TrainState(model, ema, optimizer, sampler, generator)
    if checkpoint is not None:
        state.restore(checkpoint, ctx.rank)
    step_model: torch.nn.Module = model
    if ctx.world_size > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(model)
    if config.compile:
        step_model = torch.compile(step_model)  # type: ignore[assignment]
    return Run(
        config,
        ctx,
        data,
        state,
        step_model,
        *_loaders(config, ctx, data, sampler),
        _augmentation(config, data) if config.augment else None,
    )


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
    val_local = data.val[_shard(data.val.size, ctx)]
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


def _shard(n: int, ctx: distributed.Context) -> np.ndarray:
    """Contiguous share of range(n) for this rank; shares concatenate to range(n) in order."""
    bounds = np.linspace(0, n, ctx.world_size + 1).round().astype(int)
    return np.arange(bounds[ctx.rank], bounds[ctx.rank + 1])


def batch_to_device(
    batch: Any, run: Run, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch as (images, labels) on the device, augmented if the run augments."""
    images, labels, rows = batch
    images = images.to(run.ctx.device, non_blocking=True)
    if run.ctx.device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    aug = run.augmentation
    if aug is not None:
        images = augment(
            images,
            boxes=aug.boxes[rows],
            background=aug.background[rows],
            cfg=aug.config,
            generator=generator,
        )
    return images, labels.to(run.ctx.device)


def train_step(
    state: TrainState,
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ctx: distributed.Context,
) -> float:
    """One optimizer step: forward, cross-entropy, backward, Adam, EMA; returns the loss.

    ``model`` is what is called (``state.model`` itself, or wrapped by DDP / torch.compile).
    """
    model.train()
    with autocast(ctx):
        logits = model(images)
    loss = F.cross_entropy(logits.float(), labels)
    value = float(loss.item())
    if not math.isfinite(value):
        raise TrainingError(f"The loss is {value} at step {state.step + 1}; training stopped.")
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    state.optimizer.step()
    state.ema.update(state.model)
    state.step += 1
    return value


def train_loop(run: Run, log: TrainLog | None, stop: StopRequest) -> None:
    """Steps until ``config.steps``: validate and checkpoint every ``val_every`` steps."""
    state, config, ctx = run.state, run.config, run.ctx
    batches = iter(state.sampler.track(run.loader))
    while state.step < config.steps:
        images, labels = batch_to_device(_next_batch(batches), run, state.generator)
        try:
            loss = train_step(state, run.model, images, labels, ctx)
        except TrainingError as exc:
            raise TrainingError(
                f"{exc} The last good checkpoint is {str(last_checkpoint(config.out))!r} (step "
                f"of the last validation)."
            ) from None
        if log is not None:
            lr = float(state.optimizer.param_groups[0]["lr"])
            log.step(state.step, loss, lr, images.shape[0] * ctx.world_size)
        saved = state.step % config.val_every == 0 or state.step == config.steps
        if saved:
            best = validate_and_save(run)
            if log is not None:
                log.validation([r for r in state.records if r["step"] == state.step], best)
        if stop.requested(ctx):
            if not saved:
                save_last(run)
            raise Interrupted(
                f"interrupted at step {state.step}; checkpoints/last.pt is saved. Continue with: "
                f"segtrain fit --resume {config.out}"
            )


def _next_batch(batches: Any) -> Any:
    try:
        return next(batches)
    except InputError as exc:
        # A loader worker's error arrives as a whole traceback: keep its last line.
        last = str(exc).strip().splitlines()[-1]
        raise InputError(last.split(": ", 1)[-1] if "Traceback" in str(exc) else last) from None


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


def validate_and_save(run: Run) -> int | None:
    """Validate the EMA weights; rank 0 logs the metrics and writes last.pt (and best.pt).

    Returns the step of the best validation so far.
    """
    state, config, ctx = run.state, run.config, run.ctx
    scores = evaluate(state.ema.module, run.val.loader, ctx)
    new = validation_records(state.step, run.val.labels, scores, run.val.segments)
    state.records += new
    wll = next(r["wll"] for r in new if r["segment"] == GLOBAL)
    improved = math.isfinite(wll) and wll < state.best_wll
    if improved:
        state.best_wll = wll
    checkpoint = state.checkpoint(config, ctx)
    if ctx.is_main:
        write_validation(config.out, checkpoint, state.records, improved=improved)
    _barrier(ctx)  # every rank sees the checkpoints rank 0 has just written
    best = [
        r["step"] for r in state.records if r["segment"] == GLOBAL and r["wll"] == state.best_wll
    ]
    return best[0] if best else None


def save_last(run: Run) -> None:
    """Write last.pt without validating (Ctrl-C between two validations)."""
    checkpoint = run.state.checkpoint(run.config, run.ctx)
    if run.ctx.is_main:
        save_checkpoint(last_checkpoint(run.config.out), checkpoint)
    _barrier(run.ctx)


def fit(
    config: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> Path:
    """Train as ``config`` says; return the run folder.

    Every input is checked before the run folder is written. Ctrl-C finishes the current step,
    writes last.pt and raises :class:`Interrupted`.
    """
    try:
        ctx = distributed.setup(config.device)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    try:
        return _fit(config, ctx, resume=resume, overwrite=overwrite, progress=progress)
    finally:
        distributed.teardown()


def _fit(
    config: TrainConfig, ctx: distributed.Context, *, resume: bool, overwrite: bool, progress: bool
) -> Path:
    if ctx.device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    if config.tensorboard:
        check_tensorboard()
    checkpoint = _checked_run_dir(config, ctx, resume=resume, overwrite=overwrite)
    run = build(config, ctx, checkpoint)
    if run.state.step > config.steps:  # before config.toml is rewritten with the smaller number
        raise InputError(
            f"--steps {config.steps} is below the {run.state.step} steps this run has done; "
            f"give --steps {run.state.step} or more to continue it."
        )
    out = Path(config.out)
    log = None
    if ctx.is_main:
        split = run.data.manifest[["image_id", "split"]].reset_index(drop=True)
        start_run_dir(config, split, step=run.state.step)
        log = TrainLog(
            out,
            steps=config.steps,
            start=run.state.step,
            every=config.log_every,
            show=progress,
            tensorboard=config.tensorboard,
        )
    try:
        with StopRequest() as stop:
            train_loop(run, log, stop)
    except (InputError, TrainingError):
        if ctx.is_main and checkpoint is None:
            discard_unstarted(out)  # failed before its first checkpoint: leave nothing behind
        raise
    finally:
        if log is not None:
            log.close()
    _write_val_predictions(run)
    return out


def _checked_run_dir(
    config: TrainConfig, ctx: distributed.Context, *, resume: bool, overwrite: bool
) -> dict[str, Any] | None:
    """Rank 0 checks the run folder; every rank stops with its message, none waits forever."""
    state, error = None, None
    if ctx.is_main:
        try:
            state = check_run_dir(config, resume=resume, overwrite=overwrite)
        except InputError as exc:
            error = str(exc)
    if ctx.world_size > 1:
        shared: list[Any] = [error, state is not None]
        torch.distributed.broadcast_object_list(shared, src=0)
        error = shared[0]
        if shared[1] and not ctx.is_main:
            state = load_checkpoint(last_checkpoint(config.out))
    if error is not None:
        raise InputError(error)
    return state


def _barrier(ctx: distributed.Context) -> None:
    if ctx.world_size > 1:
        torch.distributed.barrier()


def _write_val_predictions(run: Run) -> None:
    out = Path(run.config.out)
    best_path = out / "checkpoints" / "best.pt"
    if not best_path.is_file():  # every validation WLL was undefined
        return
    ema = run.state.ema
    ema.load_state_dict(load_checkpoint(best_path)["ema"])
    scores = evaluate(ema.module, run.val.loader, run.ctx)
    if run.ctx.is_main:
        rows = run.data.manifest.iloc[run.data.val]
        preds = prediction_frame(rows, scores, out.name, run.config.segment_by)
        write_parquet(out / "preds" / "val.parquet", preds)
