"""A full report on 200,000 predictions x 9 segments x 5 models (4 + a baseline), 2000 resamples.

Run:  python bench/report.py [--n-boot 2000] [--rows 200000]

Times `evaluate` + `write_report` (target: < 60 s on 2 cores, report < 5 MB) against
a named peer measured in the same run: the same numbers computed by calling segeval's public
functions one by one (segment_table, bootstrap_delta_auc, op_synchronization and segment_leakage
per model), as a notebook user would; each then draws its own resamples.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import segeval as se
from segeval.evaluation import evaluate
from segeval.report import write_report

MODELS = ("baseline", "m1", "m2", "m3", "m4")


def make_predictions(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 3, rows)
    maker = rng.integers(0, 3, rows)
    y = (rng.random(rows) < 0.02 + 0.03 * source + 0.01 * maker).astype(np.int8)
    hard = rng.normal(0, 1, rows)
    frames = []
    for k, model in enumerate(MODELS):
        logit = (
            (0.5 + 0.1 * k) * (2 * y - 1) + 0.5 * hard + 0.2 * k * source + rng.normal(0, 1, rows)
        )
        frames.append(
            pd.DataFrame(
                {
                    "image_id": np.arange(rows).astype(str),
                    "model": model,
                    "label": y,
                    "score": 1 / (1 + np.exp(-logit)),
                    "source": "S" + pd.Series(source).astype(str),
                    "manufacturer": "M" + pd.Series(maker).astype(str),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def one_by_one(preds: pd.DataFrame, n_boot: int) -> None:
    """The peer: the same statistics through the public API, one call per model."""
    per_model = {m: g.sort_values("image_id") for m, g in preds.groupby("model")}
    base = per_model["baseline"]
    segments = se.segment_keys(base, "source,manufacturer")
    y = base.label.to_numpy()
    for model, g in per_model.items():
        s = g.score.to_numpy()
        se.segment_table(y, s, segments, n_boot=n_boot)
        se.op_synchronization(y, s, segments, n_boot=n_boot)
        se.segment_leakage(y, s, segments, n_boot=n_boot)
        if model == "baseline":
            continue
        for rows in [np.arange(y.size), *segments.rows()]:
            se.bootstrap_delta_auc(y[rows], base.score.to_numpy()[rows], s[rows], n_boot=n_boot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    preds = make_predictions(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ev = evaluate(
            preds, segment_by="source,manufacturer", baseline="baseline", n_boot=args.n_boot, seed=0
        )
        t_eval = time.perf_counter() - t
        paths = write_report(ev, Path(tmp) / "report.html")
        ours = time.perf_counter() - t
        size = paths[0].stat().st_size
    t = time.perf_counter()
    one_by_one(preds, args.n_boot)
    peer = time.perf_counter() - t
    print(f"{args.rows:,} predictions x {len(MODELS)} models x 9 segments, {args.n_boot} resamples")
    print(
        f"segeval report: {ours:.1f} s (statistics {t_eval:.1f} s, figures and files "
        f"{ours - t_eval:.1f} s; target < 60 s), report.html {size / 1e6:.2f} MB (target < 5 MB)"
    )
    print(
        f"peer, public functions one by one (statistics only): {peer:.1f} s -> "
        f"{peer / t_eval:.1f}x slower than the shared-resample statistics"
    )


if __name__ == "__main__":
    main()
