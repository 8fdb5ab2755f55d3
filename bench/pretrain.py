"""Backbone pre-training throughput on CPU (patches/s), and the share of a step spent on data.

Run:  python bench/pretrain.py [--steps 20] [--batch 32] [--width 0.125]

Builds the step of `segtrain pretrain` (lesion patches of 224x224 cut from images prepared to
576x416, surjective augmentation in 2 loader workers, batches balanced over the 5 classes,
the backbone, Adam, EMA) and times it, then the peer in the same run: the same loop fed by a
plain `DataLoader(..., sampler=RandomSampler)` over the same patches (no class balance, the
default torch recipe). Also: patch extraction alone (crop + augmentation), patches/s on one core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler

from segtrain.ema import ModelEMA
from segtrain.lesions import LESION_CLASSES
from segtrain.patches import BalancedBatchSampler, PatchAugment
from segtrain.pretrain import PatchClassifier, PatchDataset, Patches, PretrainConfig, load_patches
from segtrain.synth import make_dataset


class _Keyed(torch.utils.data.Dataset[tuple[torch.Tensor, int, int]]):
    """The peer's view: item i is patch i, augmented with key i (as pretrain's items are)."""

    def __init__(self, dataset: PatchDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.dataset[(i, i)]


def run(
    patches: Patches, *, balanced: bool, steps: int, batch: int, width: float
) -> dict[str, float]:
    torch.manual_seed(0)
    dataset = PatchDataset(patches, 224, PatchAugment(), seed=0)
    labels = patches.table["class_index"].to_numpy(np.int64)
    if balanced:
        sampler = BalancedBatchSampler(labels, len(LESION_CLASSES), batch_size=batch, seed=0)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2, persistent_workers=True)
    else:
        loader = DataLoader(
            _Keyed(dataset),
            batch_size=batch,
            sampler=RandomSampler(_Keyed(dataset), replacement=True, num_samples=10**9),
            num_workers=2,
            persistent_workers=True,
        )
    model = PatchClassifier(width)
    ema = ModelEMA(model, 0.99)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = iter(loader)
    waits, totals, counts = [], [], []
    for step in range(steps + 3):  # the first steps warm the workers up
        start = time.perf_counter()
        images, y, _ = next(batches)
        got = time.perf_counter()
        loss = F.cross_entropy(model(images), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update(model)
        if step >= 3:
            waits.append(got - start)
            totals.append(time.perf_counter() - start)
            counts.append(np.bincount(y.numpy(), minlength=5))
    per_batch = np.array(counts)
    return {
        "patches_s": batch / float(np.mean(totals)),
        "step_s": float(np.mean(totals)),
        "wait_share": float(np.sum(waits) / np.sum(totals)),
        "imbalance": float(np.mean(per_batch.max(1) - per_batch.min(1))),
    }


def extraction_rate(patches: Patches, n: int = 300) -> float:
    dataset = PatchDataset(patches, 224, PatchAugment(), seed=0)
    t = time.perf_counter()
    for i in range(n):
        dataset[(i % len(dataset), i)]
    return n / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.125)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_dataset(
            tmp, scale=0.01, segments=[("S1", "Ma")], image_format="png", height=640, width=480
        )
        config = PretrainConfig(
            manifest=str(Path(tmp) / "manifest.csv"),
            lesions=str(Path(tmp) / "lesions.csv"),
            segment_by="source,manufacturer",
            out=str(Path(tmp) / "run"),
            image_height=576,
            image_width=416,
        )
        patches = load_patches(config)
        rate = extraction_rate(patches)
        ours = run(patches, balanced=True, steps=args.steps, batch=args.batch, width=args.width)
        peer = run(patches, balanced=False, steps=args.steps, batch=args.batch, width=args.width)
    print(
        f"CPU, {torch.get_num_threads()} threads, {len(patches.table)} patches of 224x224 from "
        f"images prepared to 576x416, batch {args.batch}, model width {args.width}, "
        f"{args.steps} steps"
    )
    print(f"patch extraction alone (crop + augmentation): {rate:.0f} patches/s on one core")
    print(
        f"segtrain pretrain step, 2 workers, balanced batches: {ours['patches_s']:.1f} patches/s "
        f"({ours['step_s']:.3f} s a step); waiting for data {100 * ours['wait_share']:.2f}% of "
        f"step time (target < 10%); class counts in a batch differ by {ours['imbalance']:.1f}"
    )
    print(
        f"peer, 2 workers, DataLoader + RandomSampler: {peer['patches_s']:.1f} patches/s; "
        f"waiting {100 * peer['wait_share']:.2f}%; class counts in a batch differ by "
        f"{peer['imbalance']:.1f} -> ratio {ours['patches_s'] / peer['patches_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
