"""``pretrain``: the backbone learns the 5 patch classes first (the paper's Appendix A.3).

Patches of the backbone's input size (224x224: one output position) are cut, at the resolution
``fit`` trains on, around every annotated lesion (healthy tissue included) of the images named
in a lesion table. Images are preprocessed as ``segtrain prepare`` does. Training patches are
augmented surjectively (``segtrain.patches``), every batch holds the 5 classes equally, the
loss is the categorical cross-entropy, Adam at 1e-3, and an EMA (0.99) of the weights is
validated every ``val_every`` steps. The validation loss is the paper's WLL per lesion: the log
loss with class weights estimated on the validation patches (each class counts the same). The
checkpoint with the lowest one is ``best.pt``, which ``fit --init-backbone`` starts from.

The train/validation split is :func:`segtrain.split.split_patients` of the manifest with the
seed, as ``fit`` makes it: given the same manifest and seed (or a ``split`` column), a patient's
patches serve the role its images serve in ``fit``. Patches of test images are left out.

The annotated images are held in memory at the prepared size (2 bytes a pixel: 1.9 MB an image
at 1152x832).

``pretrain`` is the second use of the run skeleton (:mod:`segtrain.loop`), ``fit`` the first:
the same settings base, device and torchrun set-up, run folder, ``TrainState`` (the sampler's
state included), training step, validation and checkpoints, Ctrl-C and resume; on several
processes each rank draws its block of every global batch and batch norm covers the whole.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import segeval as se
from segeval import GLOBAL
from segeval.io import write_csv
from segeval.validation import InputError
from segtrain import distributed
from segtrain.config import RunConfig
from segtrain.dataset import is_prepared
from segtrain.images import read_image
from segtrain.inference import probabilities
from segtrain.lesions import BOX, LESION_CLASSES, check_inside, read_lesions
from segtrain.loop import Run, execute, wrap_model
from segtrain.manifest import read_manifest
from segtrain.model import Backbone, backbone_output_size
from segtrain.patches import BalancedBatchSampler, PatchAugment, extract_patch, random_transform
from segtrain.preprocess import preprocess
from segtrain.split import split_patients
from segtrain.state import TrainState
from segtrain.train import new_state


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(RunConfig):
    """Everything that determines a pre-training run (defaults: the paper's Appendix A.3).

    The settings fit has too come from :class:`segtrain.config.RunConfig`; ``image_height`` and
    ``image_width`` are fit's size: patches are cut at that resolution.
    """

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("manifest", "out", "lesions")
    REQUIRED: ClassVar[tuple[str, ...]] = ("manifest", "lesions", "segment_by", "out")
    KIND: ClassVar[str] = "pretrain"

    lesions: str
    steps: int = 20_000
    batch_size: int = 64
    lr: float = 1e-3
    val_every: int = 500
    patch_size: int = 224

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.patch_size, bool) or not isinstance(self.patch_size, int):
            raise InputError(f"--patch-size must be an integer; got {self.patch_size!r}.")
        if min(backbone_output_size(self.patch_size, self.patch_size)) < 1:
            raise InputError(f"--patch-size {self.patch_size} is too small for the backbone.")
        side = max(self.image_height, self.image_width)
        if self.patch_size > side:
            raise InputError(
                f"--patch-size {self.patch_size} is larger than the image (--image-size "
                f"{self.image_height}x{self.image_width}): at most {side}."
            )


class PatchClassifier(nn.Module):
    """The backbone alone, as a patch classifier: (B, 1, P, P) -> (B, 5) logits.

    The attribute is named ``backbone`` as in :class:`segtrain.model.Classifier`, so that the
    checkpoint's weights are those ``fit --init-backbone`` loads.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.backbone = Backbone(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.backbone(x)
        return features.mean(dim=(2, 3))  # one position for a 224x224 patch


@dataclass
class Patches:
    """Every patch: its image (index into ``images``), centre (x, y) at the prepared size,
    class index, and split; plus the preprocessed images and their background values."""

    table: pd.DataFrame
    images: list[np.ndarray]
    backgrounds: list[float]
    split: pd.DataFrame  # image_id -> train/val/test, of every image of the manifest


def load_patches(config: PretrainConfig) -> Patches:
    """Read and check the manifest and lesion table, split, preprocess the annotated images."""
    manifest, _ = read_manifest(config.manifest, config.segment_by)
    if is_prepared(manifest):
        raise InputError(
            f"{config.manifest!r} is a prepared manifest; pretrain reads the raw images (lesion "
            f"boxes are in their pixels): give the manifest you gave to segtrain prepare."
        )
    lesions = read_lesions(config.lesions, manifest["image_id"])
    split = split_patients(
        manifest, by=config.split_by, val_fraction=config.val_fraction, seed=config.seed
    )
    rows = manifest.assign(split=split.to_numpy()).set_index("image_id")
    root = Path(config.manifest).parent
    ids = list(dict.fromkeys(lesions["image_id"]))
    sizes: dict[str, tuple[int, int]] = {}
    images, backgrounds = [], []
    # Per lesion row: its image's index in `images`, its centre at the prepared size, and
    # whether its box survives the preprocessing's crop.
    image = np.zeros(len(lesions), dtype=np.int64)
    centre = np.zeros((len(lesions), 2))
    kept = np.zeros(len(lesions), dtype=bool)
    for image_id in _progress(ids, "read images"):
        raw = read_image(root / str(rows.at[image_id, "path"]))
        sizes[image_id] = (int(raw.shape[0]), int(raw.shape[1]))
        mine = lesions[lesions["image_id"] == image_id]
        check_inside(mine, sizes, config.lesions)
        done = preprocess(raw, height=config.image_height, width=config.image_width)
        images.append(done.image.astype(np.float16))
        backgrounds.append(done.background)
        for row, box in zip(mine.index, mine[BOX].itertuples(index=False), strict=True):
            x0, y0, x1, y1 = done.map_box(tuple(box))
            image[row] = len(images) - 1
            centre[row] = ((x0 + x1) / 2, (y0 + y1) / 2)
            kept[row] = x1 > x0 and y1 > y0
    table = lesions.assign(
        image=image,
        cx=centre[:, 0],
        cy=centre[:, 1],
        split=rows.loc[lesions["image_id"], "split"].to_numpy(),
    )
    table = table[kept & (table["split"] != "test").to_numpy()]
    if not kept.all():
        warnings.warn(
            f"{int((~kept).sum())} lesion(s) fall outside the prepared image "
            f"(cropped away by preprocessing) and are left out.",
            UserWarning,
            stacklevel=2,
        )
    for part in ("train", "val"):
        if not (table["split"] == part).any():
            raise InputError(f"The split leaves no {part} patch; both are needed.")
    split_frame = pd.DataFrame({"image_id": manifest["image_id"], "split": split.to_numpy()})
    return Patches(table.reset_index(drop=True), images, backgrounds, split_frame)


class PatchDataset(Dataset[tuple[torch.Tensor, int, int]]):
    """Samples ``(patch (1, P, P), class, patch index)``; an item is an index, or ``(index,
    key)`` for an augmented patch whose transform is seeded by (seed, key)."""

    def __init__(
        self, patches: Patches, size: int, augment: PatchAugment | None, seed: int
    ) -> None:
        self.images, self.backgrounds = patches.images, patches.backgrounds
        self.image = patches.table["image"].to_numpy()
        self.centre = patches.table[["cx", "cy"]].to_numpy(float)
        self.label = patches.table["class_index"].to_numpy(np.int64)
        self.size, self.augment, self.seed = size, augment, seed

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        index, key = item if isinstance(item, tuple) else (item, None)
        matrix = None
        if self.augment is not None and key is not None:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(key,)))
            matrix = random_transform(rng, self.augment)
        k = int(self.image[index])
        patch = extract_patch(
            self.images[k],
            (float(self.centre[index, 0]), float(self.centre[index, 1])),
            self.size,
            background=self.backgrounds[k],
            matrix=matrix,
        )
        return torch.from_numpy(patch)[None], int(self.label[index]), int(index)


def patch_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Validation metrics of (n,) true classes and (n, 5) probabilities.

    ``wll``: the mean over the classes present of their mean log loss (the paper's WLL per
    lesion); ``loss``: the plain mean log loss; ``auc``: the macro one-vs-rest AUC over the
    classes present; per-class accuracy (recall) and the confusion matrix (rows: true class).
    """
    k = len(LESION_CLASSES)
    p_true = np.clip(probs[np.arange(y.size), y], 1e-7, 1.0)
    losses = -np.log(p_true)
    present = [c for c in range(k) if (y == c).any()]
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    aucs = [se.roc_auc(y == c, probs[:, c]) for c in present if (y != c).any()]
    return {
        "wll": float(np.mean([losses[y == c].mean() for c in present])),
        "loss": float(losses.mean()),
        "auc": float(np.mean(aucs)) if aucs else math.nan,
        "accuracy": float((predicted == y).mean()),
        "per_class_accuracy": {
            LESION_CLASSES[c]: float(confusion[c, c] / confusion[c].sum()) if c in present else None
            for c in range(k)
        },
        "n": {LESION_CLASSES[c]: int((y == c).sum()) for c in range(k)},
        "confusion": confusion.tolist(),
    }


@dataclass
class PretrainTask:
    """pretrain's part of a run: patch batches, 5-class cross-entropy, the patch metrics of the
    validation patients, and the page at the end."""

    def __init__(
        self, ctx: distributed.Context, patches: Patches, val: DataLoader[Any], labels: np.ndarray
    ) -> None:
        self.ctx, self.patches, self.val, self.labels = ctx, patches, val, labels

    def batch(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels, _ = batch  # augmented by the dataset, seeded by each patch's key
        return images.to(self.ctx.device, non_blocking=True), labels.to(self.ctx.device)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def validate(self, state: TrainState) -> list[dict[str, Any]]:
        probs = probabilities(state.ema.module, self.val, self.ctx, len(LESION_CLASSES))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a class absent from validation: its AUC is NaN
            return [{"step": state.step, "segment": GLOBAL, **patch_metrics(self.labels, probs)}]

    def split(self) -> pd.DataFrame:
        return self.patches.split

    def start(self, out: Path) -> None:
        columns = ["image_id", "lesion_class", "x0", "y0", "x1", "y1", "cx", "cy", "split"]
        write_csv(out / "patches.csv", self.patches.table[columns])

    def finish(self, run: Run) -> None:
        if run.ctx.is_main:
            from segtrain.pretrain_report import write_report

            write_report(Path(run.config.out), run.state.records)


def build(
    config: PretrainConfig, ctx: distributed.Context, checkpoint: dict[str, Any] | None = None
) -> Run:
    """Make every object of a pre-training run (restored from ``checkpoint``); writes nothing."""
    patches = load_patches(config)
    table = patches.table
    train_rows = np.flatnonzero((table["split"] == "train").to_numpy())
    val_rows = np.flatnonzero((table["split"] == "val").to_numpy())
    augment = PatchAugment(config.rotation, (config.zoom_min, config.zoom_max), config.shear)
    train_set = PatchDataset(
        patches, config.patch_size, augment if config.augment else None, config.seed
    )
    sampler = BalancedBatchSampler(
        table["class_index"].to_numpy(np.int64)[train_rows],
        len(LESION_CLASSES),
        batch_size=config.batch_size // ctx.world_size,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    torch.manual_seed(config.seed)  # the initial weights, the same on every rank
    model = PatchClassifier(config.width).to(ctx.device)
    state = new_state(model, config, ctx, sampler)
    if checkpoint is not None:
        state.restore(checkpoint, ctx.rank)
    loader = DataLoader(
        _Rows(train_set, train_rows),
        batch_sampler=sampler,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
    )
    val_local = val_rows[distributed.shard(val_rows.size, ctx)]
    val_loader = DataLoader(
        _Rows(PatchDataset(patches, config.patch_size, None, config.seed), val_local),
        batch_size=64,
        num_workers=min(config.workers, 1),
    )
    val_labels = table["class_index"].to_numpy(np.int64)[val_rows]
    task = PretrainTask(ctx, patches, val_loader, val_labels)
    return Run(config, ctx, state, wrap_model(model, ctx, compile=False), loader, task)


def pretrain(
    config: PretrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> Path:
    """Pre-train the backbone as ``config`` says; return the run folder."""
    return execute(config, build, resume=resume, overwrite=overwrite, progress=progress)


def read_records(run: Path) -> list[dict[str, Any]]:
    """The validation records of a pretrain run folder (``metrics.jsonl``)."""
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


class _Rows(Dataset[tuple[torch.Tensor, int, int]]):
    """``dataset`` seen through ``rows``: item i is dataset item rows[i] (with its key, if any)."""

    def __init__(self, dataset: PatchDataset, rows: np.ndarray) -> None:
        self.dataset, self.rows = dataset, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        if isinstance(item, tuple):
            return self.dataset[(int(self.rows[item[0]]), item[1])]
        return self.dataset[int(self.rows[item])]


def _progress(items: list[str], desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="image", disable=None, leave=False)
