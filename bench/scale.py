"""Many segments: 2000 segments x 2 models, 2000 resamples, the full report (target: < 60 s).

Run:  python bench/scale.py [--segments 2000] [--rows 100000] [--n-boot 2000]

Segment sizes vary (10 to ~90 images), prevalence 15%. Before the engine of issue 10 the same
data took minutes even at --n-boot 50: the OP spread compared every pair of segments per
resample, and each small segment's resamples ran one at a time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import segeval as se


def make_predictions(rows: int, segments: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = rng.uniform(1, 9, segments)
    site = rng.choice(segments, rows, p=weights / weights.sum())
    y = (rng.random(rows) < 0.15).astype(np.int8)
    frames = []
    for k, model in enumerate(("baseline", "new")):
        logit = (1 + 0.3 * k) * (2 * y - 1) + 0.3 * np.sin(site) + rng.normal(0, 1, rows)
        frames.append(
            pd.DataFrame(
                {
                    "image_id": np.arange(rows).astype(str),
                    "model": model,
                    "label": y,
                    "score": 1 / (1 + np.exp(-logit)),
                    "site": "H" + pd.Series(site).astype(str),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    preds = make_predictions(args.rows, args.segments)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", se.UndefinedMetricWarning)
        t = time.perf_counter()
        ev = se.evaluate(preds, segment_by="site", baseline="baseline", n_boot=args.n_boot)
        stats = time.perf_counter() - t
        paths = ev.write(Path(tmp) / "report.html")
        total = time.perf_counter() - t
        size = paths[0].stat().st_size / 1e6
    print(
        f"{args.segments} segments x 2 models, {args.rows} images, n_boot {args.n_boot}: "
        f"statistics {stats:.1f} s, with figures and files {total:.1f} s, report {size:.2f} MB"
    )


if __name__ == "__main__":
    main()
