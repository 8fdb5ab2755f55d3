"""Training throughput on CPU at a small image size, and where a step's time goes.

Run:  python bench/train.py [--steps 30] [--height 288 --width 208]

Builds a run with `segtrain fit`'s own `build` (periodic sampler, DataLoader over cached arrays,
model, Adam, EMA) and times its real `train_step` (after `batch_to_device`: augmentation), in
one run:
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
import torch

from segtrain.config import TrainConfig
from segtrain.distributed import Context
from segtrain.prepare import prepare
from segtrain.sampler import PeriodicBatchSampler
from segtrain.synth import make_dataset
from segtrain.train import batch_to_device, build, train_step


def run(
    manifest: Path,
    *,
    workers: int,
    steps: int,
    size: tuple[int, int],
    batch: int = 24,
) -> dict[str, float]:
    """Time ``steps`` steps of `segtrain fit`'s own objects and step on ``manifest``."""
    config = TrainConfig(
        manifest=str(manifest),
        segment_by="source,manufacturer",
        out="unused",
        steps=steps + 3,
        val_every=steps + 3,
        batch_size=batch,
        image_height=size[0],
        image_width=size[1],
        width=0.25,
        workers=workers,
        device="cpu",
    )
    ctx = Context(0, 1, torch.device("cpu"))
    built = build(config, ctx)  # what `segtrain fit` builds: sampler, loader, model, Adam, EMA
    batches = iter(built.state.sampler.track(built.loader))
    waits, totals = [], []
    for step in range(steps + 3):  # the first steps warm the workers up
        start = time.perf_counter()
        batch_ = next(batches)
        got = time.perf_counter()
        images, labels = batch_to_device(batch_, built, built.state.generator)  # + augmentation
        train_step(built.state, built.model, images, labels, ctx, built.task.loss)
        if step >= 3:
            waits.append(got - start)
            totals.append(time.perf_counter() - start)
    # The sampler alone, for as many batches: its share of the step.
    data = built.data
    names = np.asarray(data.segments.names, dtype=object)[data.segments.codes[data.train]]
    labels = data.manifest["label"].to_numpy()[data.train]
    fresh = PeriodicBatchSampler(labels, names, batch_size=batch, seed=1)
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
        prepare(
            Path(tmp) / "raw" / "manifest.csv",
            Path(tmp) / "cache",
            height=size[0],
            width=size[1],
            workers=2,
        )
        cached = Path(tmp) / "cache" / "manifest.csv"
        ours = run(cached, workers=2, steps=args.steps, size=size)
        peer = run(Path(tmp) / "raw" / "manifest.csv", workers=2, steps=args.steps, size=size)
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
