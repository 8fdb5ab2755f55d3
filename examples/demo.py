"""The paper's experiments end to end on synthetic multi-source data (the README's main job).

1. Synthetic data, scaled down from Table 1: training DSs (S1,Ma), (S1,Mb), (S2,Ma), (S2,Mb);
   test DSs (S3,Ma), (S3,Mb), (S4,Mc), (S4,Md), (S5,Mc). Preprocessed once (segtrain prepare).
2. Training: the single-segment baselines on (S1,Ma) and on (S1,Mb); then, for Experiment 1
   (2 DSs: (S1,Ma), (S2,Ma)) and Experiment 2 (all 4 training DSs), the three strategies:
   balanced labels, balanced segments, periodic.
3. Predictions of every best checkpoint on the test DSs, and one segeval report: ΔAUC against
   the baseline with CI, p-value and verdict (Tables 2-4), validation curves (Figure 3), ROC
   curves with operating points (Figures 4 and 6), score distributions (Figure 1).

Run:  python examples/demo.py [--out demo] [--quick]
Every step is seeded (--seed); on 2 CPU cores the full run takes about 10-15 minutes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from segeval.cli import main as segeval_main
from segeval.io import write_csv
from segtrain.config import TrainConfig
from segtrain.predict import predict
from segtrain.prepare import prepare
from segtrain.synth import make_dataset

TRAIN_DS = [("S1", "Ma"), ("S1", "Mb"), ("S2", "Ma"), ("S2", "Mb")]
TEST_DS = [("S3", "Ma"), ("S3", "Mb"), ("S4", "Mc"), ("S4", "Md"), ("S5", "Mc")]
EXPERIMENTS = {"exp1": [("S1", "Ma"), ("S2", "Ma")], "exp2": TRAIN_DS}
STRATEGIES = {
    "bal_labels": "balanced-labels",
    "bal_segments": "balanced-segments",
    "periodic": "periodic",
}


def log(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)


def subset(manifest: pd.DataFrame, segments: list[tuple[str, str]]) -> pd.DataFrame:
    keep = pd.Series(list(zip(manifest.source, manifest.manufacturer, strict=True))).isin(segments)
    return manifest[keep.to_numpy()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo"))
    parser.add_argument("--quick", action="store_true", help="tiny version (tests)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out, started = args.out, time.perf_counter()
    quick = args.quick
    scale, min_label = (0.004, 6) if quick else (0.02, 16)
    steps, val_every = (8, 4) if quick else (240, 40)
    batch = 8 if quick else 24  # quick: S1Mb trains on 8 images, and a batch may not exceed that
    n_boot = 50 if quick else 1000

    raw = out / "data"
    if not (raw / "manifest.csv").is_file():
        make_dataset(
            raw,
            scale=scale,
            segments=TRAIN_DS + TEST_DS,
            height=256,
            width=192,
            min_per_label=min_label,
            seed=args.seed,
        )
    log("synthetic data written", started)
    cache = out / "cache"
    manifest = prepare(raw / "manifest.csv", cache, height=288, width=224, workers=2)
    log(f"{len(manifest)} images preprocessed to 288x224", started)

    # One manifest per training set, and the test set; all point at the same cached arrays.
    manifests = {
        "S1Ma": subset(manifest, [("S1", "Ma")]),
        "S1Mb": subset(manifest, [("S1", "Mb")]),
        **{name: subset(manifest, ds) for name, ds in EXPERIMENTS.items()},
        "test": subset(manifest, TEST_DS),
    }
    for name, frame in manifests.items():
        write_csv(cache / f"{name}.csv", frame)

    base = TrainConfig(
        manifest="",
        segment_by="source,manufacturer",
        out="",
        steps=steps,
        val_every=val_every,
        batch_size=batch,
        lr=1e-3,
        ema_decay=0.95,
        image_height=288,
        image_width=224,
        width=0.125,
        workers=2,
        seed=args.seed,
        device="cpu",
    )
    runs = {
        "single_S1Ma": replace(base, manifest=str(cache / "S1Ma.csv"), strategy="balanced-labels"),
        "single_S1Mb": replace(base, manifest=str(cache / "S1Mb.csv"), strategy="balanced-labels"),
        **{
            f"{exp}_{short}": replace(base, manifest=str(cache / f"{exp}.csv"), strategy=strategy)
            for exp in EXPERIMENTS
            for short, strategy in STRATEGIES.items()
        },
    }
    from segtrain.train import fit

    preds = []
    for name, config in runs.items():
        run_dir = out / "runs" / name
        if not (run_dir / "preds" / "val.parquet").is_file():
            fit(replace(config, out=str(run_dir)), overwrite=True, progress=False)
        target = out / "preds" / f"{name}.parquet"
        predict(
            run_dir / "checkpoints" / "best.pt",
            cache / "test.csv",
            target,
            model_name=name,
            device="cpu",
        )
        preds.append(target)
        log(f"trained and scored {name}", started)

    report = out / "report.html"
    argv = [
        "report",
        "--segment-by",
        "source,manufacturer",
        "--baseline",
        "single_S1Ma",
        "--cluster",
        "patient_id",
        "--n-boot",
        str(n_boot),
        "--seed",
        str(args.seed),
        "--out",
        str(report),
    ]
    for p in preds:
        argv += ["--preds", str(p)]
    for name in runs:
        argv += ["--run", str(out / "runs" / name)]
    code = segeval_main(argv)
    log(f"report written: {report}" if code == 0 else "report failed", started)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
