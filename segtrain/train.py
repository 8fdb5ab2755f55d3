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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from segeval import segment_table
from segeval._validation import InputError
from segeval.io import to_jsonable, write_parquet, write_text
from segeval.segments import GLOBAL, Segments
from segtrain import distributed
from segtrain.augment import AugmentConfig, augment
from segtrain.checkpoint import load_checkpoint, save_checkpoint
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
        state = load_checkpoint(config.init_backbone)
        saved_width = state.get("config", {}).get("width")
        if saved_width != config.width:
            raise InputError(
                f"--init-backbone {config.init_backbone!r} was made for another "
                f"model: width is {saved_width!r} there and {config.width!r} here."
            )
        weights = {
            k.removeprefix("backbone."): v
            for k, v in state["ema"]["module"].items()
            if k.startswith("backbone.")
        }
        model.backbone.load_state_dict(weights)
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
    state = prepare_run_dir(config, resume=resume, overwrite=overwrite) if ctx.is_main else None
    if not resume and ctx.world_size > 1:
        torch.distributed.barrier()
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
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed * 1000 + ctx.rank)
    step, best = 0, math.inf
    records: list[dict[str, Any]] = []
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(
            state["sampler"][ctx.rank] if isinstance(state["sampler"], list) else state["sampler"]
        )
        generator.set_state(state["rng"]["augment"][ctx.rank])
        step, best = int(state["step"]), float(state["best_wll"])
        records = json.loads(state["records"])
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
    val_y = data.manifest["label"].to_numpy()[data.val]
    val_segments = _subset_segments(data.segments, data.val)
    bar = _progress_bar(config, step, ctx, progress)
    batches = iter(loader)
    seen, started = 0, time.perf_counter()
    while step < config.steps:
        train_model.train()
        images, labels, rows = next(batches)
        images = images.to(ctx.device, non_blocking=True)
        if ctx.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        if config.augment:
            images = augment(
                images, boxes=boxes[rows], background=background[rows], cfg=aug, generator=generator
            )
        with _autocast(ctx):
            logits = train_model(images)
        loss = F.cross_entropy(logits.float(), labels.to(ctx.device))
        if not torch.isfinite(loss):
            raise TrainingError(
                f"The loss is {loss.item()} at step {step + 1}; training stopped. The last good "
                f"checkpoint is {str(out / 'checkpoints' / 'last.pt')!r} (step of the last "
                f"validation)."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update(model)
        step += 1
        seen += images.shape[0] * ctx.world_size
        if bar is not None:
            bar.update()
            bar.set_postfix(
                loss=f"{loss.item():.4f}", img_s=f"{seen / (time.perf_counter() - started):.1f}"
            )
        if step % config.val_every == 0 or step == config.steps:
            scores = evaluate(ema.module, val_loader, ctx)
            if ctx.is_main:
                new = validation_records(step, val_y, scores, val_segments)
                records += new
                wll = next(r["wll"] for r in new if r["segment"] == GLOBAL)
                checkpoint = {
                    "config": config.to_dict(),
                    "step": step,
                    "model": model.state_dict(),
                    "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "sampler": _gather_objects(sampler.state_dict(), ctx),
                    "rng": {"augment": _gather_objects(generator.get_state(), ctx)},
                    "best_wll": min(best, wll) if math.isfinite(wll) else best,
                    "records": json.dumps(to_jsonable(records)),
                }
                if math.isfinite(wll) and wll < best:
                    best = wll
                    save_checkpoint(out / "checkpoints" / "best.pt", checkpoint)
                save_checkpoint(out / "checkpoints" / "last.pt", checkpoint)
                write_text(
                    out / "metrics.jsonl",
                    "".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in records),
                )
            else:
                _gather_objects(sampler.state_dict(), ctx)
                _gather_objects(generator.get_state(), ctx)
            _barrier(ctx)  # every rank sees the checkpoints rank 0 has just written
    if bar is not None:
        bar.close()
    _write_val_predictions(config, data, dataset, ema, val_loader, val_y, ctx)
    return out


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
    dataset: ManifestDataset,
    ema: ModelEMA,
    val_loader: DataLoader[Any],
    val_y: np.ndarray,
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
