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
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import segeval as se
from segeval.io import to_jsonable, write_csv, write_parquet, write_text
from segeval.validation import InputError
from segtrain.checkpoint import load_checkpoint
from segtrain.dataset import is_prepared
from segtrain.ema import ModelEMA
from segtrain.images import read_image
from segtrain.lesions import BOX, LESION_CLASSES, check_inside, read_lesions
from segtrain.manifest import read_manifest
from segtrain.model import Backbone, backbone_output_size
from segtrain.patches import BalancedBatchSampler, PatchAugment, extract_patch, random_transform
from segtrain.preprocess import preprocess
from segtrain.rundir import write_validation
from segtrain.split import split_patients

RUNTIME_FIELDS = ("out", "device", "workers", "steps")


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that determines a pre-training run (defaults: the paper's Appendix A.3)."""

    manifest: str
    lesions: str
    segment_by: str
    out: str
    steps: int = 20_000
    batch_size: int = 64
    lr: float = 1e-3
    ema_decay: float = 0.99
    val_every: int = 500
    image_height: int = 1152  # the size fit trains on: patches are cut at that resolution
    image_width: int = 832
    patch_size: int = 224
    width: float = 1.0  # channel multiplier of the backbone (fit's model width)
    split_by: str = "source"
    val_fraction: float = 0.2
    augment: bool = True
    rotation: float = 10.0
    zoom_min: float = 0.9
    zoom_max: float = 1.1
    shear: float = 5.0
    seed: int = 0
    device: str = "auto"
    workers: int = 2

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "val_every", "image_height", "image_width"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1; got {getattr(self, name)!r}.")
        if self.steps < self.val_every:
            raise InputError(
                f"steps ({self.steps}) must be at least val-every ({self.val_every}): a run "
                f"with no validation step has no best checkpoint."
            )
        if min(backbone_output_size(self.patch_size, self.patch_size)) < 1:
            raise InputError(f"patch-size {self.patch_size} is too small for the backbone.")
        if not 0 < self.lr < 1 or not 0 <= self.ema_decay < 1 or self.width <= 0:
            raise InputError(
                f"Need 0 < lr < 1, 0 <= ema-decay < 1 and model-width > 0; got lr={self.lr}, "
                f"ema-decay={self.ema_decay}, model-width={self.width}."
            )
        if self.workers < 0:
            raise InputError(f"workers must be >= 0; got {self.workers}.")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise InputError(f"device must be auto, cpu, cuda or cuda:N; got {self.device!r}.")
        if not 0 < self.zoom_min <= self.zoom_max:
            raise InputError(
                f"Need 0 < zoom-min <= zoom-max; got {self.zoom_min}, {self.zoom_max}."
            )

    def to_toml(self) -> str:
        lines = ["# segtrain pretrain configuration (fully resolved)"]
        for key, value in dataclasses.asdict(self).items():
            text = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
            lines.append(f"{key} = {text}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, path: Path, **overrides: Any) -> PretrainConfig:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{str(path)!r} is not a readable pretrain config ({exc}).") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except TypeError as exc:
            raise InputError(f"{str(path)!r}: bad settings ({exc}).") from exc


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
class State:
    """What a checkpoint restores."""

    model: PatchClassifier
    ema: ModelEMA
    optimizer: torch.optim.Optimizer
    step: int = 0
    best_wll: float = math.inf
    records: list[dict[str, Any]] = field(default_factory=list)

    def checkpoint(self, config: PretrainConfig) -> dict[str, Any]:
        return {
            "kind": "pretrain",
            "config": dataclasses.asdict(config),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_wll": self.best_wll,
            "records": json.dumps(to_jsonable(self.records)),
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.ema.load_state_dict(checkpoint["ema"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.step = int(checkpoint["step"])
        self.best_wll = float(checkpoint["best_wll"])
        self.records = json.loads(checkpoint["records"])


def _run_folder(config: PretrainConfig, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check the run folder; return the checkpoint to resume from, if any."""
    out = Path(config.out)
    if resume:
        last = out / "checkpoints" / "last.pt"
        if not last.is_file():
            raise InputError(f"--resume: {str(out)!r} has no checkpoints/last.pt.")
        state = load_checkpoint(last)
        if state.get("kind") != "pretrain":
            raise InputError(f"--resume: {str(out)!r} is not a pretrain run.")
        saved = dataclasses.asdict(PretrainConfig(**state["config"]))
        ours = dataclasses.asdict(config)
        changed = [k for k in saved if k not in RUNTIME_FIELDS and saved[k] != ours[k]]
        if changed:
            raise InputError(
                f"--resume: the run {str(out)!r} was made with other settings: "
                f"{', '.join(changed)}."
            )
        return state
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(
                f"The output folder {str(out)!r} is not empty; give --resume to continue that "
                f"run or --overwrite to replace it."
            )
        for name in (
            "checkpoints",
            "metrics.jsonl",
            "config.toml",
            "split.parquet",
            "patches.csv",
            "report.html",
        ):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return None


def pretrain(
    config: PretrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> Path:
    """Pre-train the backbone as ``config`` says; return the run folder."""
    out = Path(config.out)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu")
        if config.device == "auto"
        else config.device
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"--device {config.device} was asked for, but no CUDA device is available."
        )
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    saved = _run_folder(config, resume=resume, overwrite=overwrite)
    patches = load_patches(config)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_text(out / "config.toml", config.to_toml())
    write_parquet(out / "split.parquet", patches.split)
    write_csv(
        out / "patches.csv",
        patches.table[["image_id", "lesion_class", "x0", "y0", "x1", "y1", "cx", "cy", "split"]],
    )
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
        batch_size=config.batch_size,
        seed=config.seed,
    )
    torch.manual_seed(config.seed)  # the initial weights
    model = PatchClassifier(config.width).to(device)
    state = State(
        model, ModelEMA(model, config.ema_decay), torch.optim.Adam(model.parameters(), lr=config.lr)
    )
    if saved is not None:
        state.restore(saved)
    # The sampler starts at the batch the step count says: exact whatever the workers prefetch.
    sampler.start = state.step
    loader = DataLoader(
        _Rows(train_set, train_rows),
        batch_sampler=sampler,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
    )
    val_loader = DataLoader(
        _Rows(PatchDataset(patches, config.patch_size, None, config.seed), val_rows),
        batch_size=64,
        num_workers=min(config.workers, 1),
    )
    val_labels = table["class_index"].to_numpy(np.int64)[val_rows]
    bar = _bar(config.steps, state.step, progress)
    batches = iter(loader)
    while state.step < config.steps:
        model.train()
        images, labels, _ = next(batches)
        loss = F.cross_entropy(model(images.to(device)), labels.to(device))
        if not torch.isfinite(loss):
            raise InputError(
                f"The loss is {loss.item()} at step {state.step + 1}; pre-training stopped. The "
                f"last good checkpoint is {str(out / 'checkpoints' / 'last.pt')!r}."
            )
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        state.optimizer.step()
        state.ema.update(model)
        state.step += 1
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if state.step % config.val_every == 0 or state.step == config.steps:
            _validate_and_save(state, val_loader, val_labels, config, device)
    if bar is not None:
        bar.close()
    from segtrain.pretrain_report import write_report

    write_report(out, state.records)
    return out


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


def _validate_and_save(
    state: State,
    loader: DataLoader[Any],
    labels: np.ndarray,
    config: PretrainConfig,
    device: torch.device,
) -> None:
    model = state.ema.module
    model.eval()
    with torch.no_grad():
        probs = torch.cat(
            [torch.softmax(model(x.to(device)).float(), dim=1).cpu() for x, _, _ in loader]
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class absent from validation: its AUC is NaN
        record = {
            "step": state.step,
            "segment": "__global__",
            **patch_metrics(labels, probs.numpy()),
        }
    state.records.append(record)
    improved = math.isfinite(record["wll"]) and record["wll"] < state.best_wll
    if improved:
        state.best_wll = record["wll"]
    write_validation(config.out, state.checkpoint(config), state.records, improved=improved)


def _progress(items: list[str], desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="image", disable=None, leave=False)


def _bar(total: int, initial: int, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="pretrain", unit="step", disable=None)
