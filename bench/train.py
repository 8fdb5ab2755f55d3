"""Training throughput on CPU at a small image size, and where a step's time goes.

Run:  python bench/train.py [--steps 30] [--height 288 --width 208]

Builds the training step of `segtrain fit` (periodic sampler, DataLoader over cached arrays,
augmentation, model, Adam, EMA) and times it three ways in one run:
- with 2 loader workers on cached arrays: images/s, the share of step time spent waiting for
  data, and the share spent in the sampler (targets: < 10% and < 1%);
- the peer: the same loop, 2 workers, reading the raw DICOMs and preprocessing them on the fly
  (what training without `segtrain prepare` does).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from segtrain.augment import AugmentConfig, augment
from segtrain.dataset import ManifestDataset
from segtrain.ema import ModelEMA
from segtrain.manifest import lesion_boxes
from segtrain.model import Classifier
from segtrain.prepare import prepare
from segtrain.sampler import PeriodicBatchSampler
from segtrain.synth import make_dataset


def run(
    manifest: pd.DataFrame,
    root: Path,
    *,
    workers: int,
    steps: int,
    size: tuple[int, int],
    batch: int = 24,
) -> dict[str, float]:
    torch.manual_seed(0)
    segments = manifest.source + "/" + manifest.manufacturer
    sampler = PeriodicBatchSampler(
        manifest.label.to_numpy(), segments.to_numpy(), batch_size=batch, seed=0
    )
    dataset = ManifestDataset(manifest, root, height=size[0], width=size[1])
    loader = DataLoader(
        dataset, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0
    )
    model = Classifier(size, width=0.25)
    ema = ModelEMA(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    prepared = "background" in manifest
    boxes = torch.tensor(
        lesion_boxes(manifest) if prepared else np.full((len(manifest), 4), np.nan)
    )
    background = torch.tensor(
        manifest.background.to_numpy() if prepared else np.zeros(len(manifest)), dtype=torch.float32
    )
    generator = torch.Generator().manual_seed(0)
    batches = iter(loader)
    waits, totals = [], []
    for step in range(steps + 3):  # the first steps warm the workers up
        start = time.perf_counter()
        images, labels, rows = next(batches)
        got = time.perf_counter()
        images = augment(
            images,
            boxes=boxes[rows],
            background=background[rows],
            cfg=AugmentConfig(),
            generator=generator,
        )
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update(model)
        if step >= 3:
            waits.append(got - start)
            totals.append(time.perf_counter() - start)
    # The sampler alone, for as many batches: its share of the step.
    fresh = PeriodicBatchSampler(
        manifest.label.to_numpy(), segments.to_numpy(), batch_size=batch, seed=1
    )
    it = iter(fresh)
    t = time.perf_counter()
    for _ in range(steps):
        next(it)
    sampler_time = (time.perf_counter() - t) / steps
    step_time = float(np.mean(totals))
    return {
        "images_s": batch / step_time,
        "step_s": step_time,
        "wait_share": float(np.sum(waits) / np.sum(totals)),
        "sampler_share": sampler_time / step_time,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=208)
    args = parser.parse_args()
    size = (args.height, args.width)
    with tempfile.TemporaryDirectory() as tmp:
        make_dataset(
            Path(tmp) / "raw",
            scale=0.005,
            segments=[("S1", "Ma"), ("S2", "Ma")],
            height=384,
            width=288,
        )
        prepared = prepare(
            Path(tmp) / "raw" / "manifest.csv",
            Path(tmp) / "cache",
            height=size[0],
            width=size[1],
            workers=2,
        )
        ours = run(prepared, Path(tmp) / "cache", workers=2, steps=args.steps, size=size)
        raw = pd.read_csv(Path(tmp) / "raw" / "manifest.csv")
        peer = run(raw, Path(tmp) / "raw", workers=2, steps=args.steps, size=size)
    print(
        f"CPU, {torch.get_num_threads()} threads, images {size[0]}x{size[1]}, batch 24, "
        f"model width 0.25, {args.steps} steps"
    )
    print(
        f"2 workers, cached arrays: {ours['images_s']:.1f} images/s ({ours['step_s']:.3f} s a "
        f"step); waiting for data {100 * ours['wait_share']:.2f}% of step time (target < 10%); "
        f"sampler {100 * ours['sampler_share']:.3f}% (target < 1%)"
    )
    ratio = ours["images_s"] / peer["images_s"]
    print(
        f"peer, 2 workers preprocessing raw DICOMs on the fly: {peer['images_s']:.1f} images/s; "
        f"waiting {100 * peer['wait_share']:.1f}% -> the cache gives {ratio:.2f}x"
    )


if __name__ == "__main__":
    main()
