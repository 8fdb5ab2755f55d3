"""The paper's experiments end to end on synthetic multi-source data (the README's main job).

1. Synthetic data, scaled down from Table 1: training DSs (S1,Ma), (S1,Mb), (S2,Ma), (S2,Mb);
   test DSs (S3,Ma), (S3,Mb), (S4,Mc), (S4,Md), (S5,Mc), with lesions annotated on a subset of
   (S1,Ma) (Table 8). One patient-wise train/validation split of the training DSs serves every
   run. Preprocessed once (segtrain prepare).
2. Training: the backbone is pre-trained once on the (S1,Ma) lesion patches (Appendix A.3);
   every model starts from it (--no-pretrain: from scratch): the single-segment baselines on
   (S1,Ma) and on (S1,Mb); then, for Experiment 1 (2 DSs: (S1,Ma), (S2,Ma)) and Experiment 2
   (all 4 training DSs), the three strategies: balanced labels, balanced segments, periodic.
3. Predictions of every best checkpoint on the test DSs, and one segeval report: ΔAUC against
   the baseline with CI, p-value and verdict (Tables 2-4), validation curves (Figure 3), ROC
   curves with operating points (Figures 4 and 6), score distributions (Figure 1), and each
   model's segment leakage (how well its score tells the segments apart within a label), on
   the test set and on each run's validation set.
4. With --seeds N, every model is trained N times (seeds --seed … --seed+N−1, from the same
   pre-trained backbone and split): the report's scorecard then has one row per model over its
   seeds, it compares the strategies over the test images *and* the training seeds, and
   leakage_validation.csv holds every run's leakage on its own validation set (the report
   shows the first seed's, with its validation curves).

Run:  python examples/demo.py [--out demo] [--quick] [--seeds N]
Every step is seeded (--seed); on 2 idle CPU cores the full run takes 11 minutes (10 min 54 s
measured on 2026-12-05, 0.92 GB peak memory); --seeds N takes about N times as long.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd

from segeval import UndefinedMetricWarning, segment_leakage
from segeval.cli import main as segeval_main
from segeval.io import write_csv, write_parquet
from segtrain import reproducible
from segtrain.config import TrainConfig
from segtrain.predict import predict
from segtrain.prepare import prepare
from segtrain.pretrain import PretrainConfig, pretrain
from segtrain.split import split_patients
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


def add_split(path: Path, seed: int) -> None:
    """One patient-wise split for every run, made once: a `split` column in the manifest.

    Each run would otherwise split its own manifest, and a patient of (S1, Ma) could validate
    one model and train another, or the backbone.
    """
    manifest = pd.read_csv(path)
    training = subset(manifest, TRAIN_DS)
    # 80/20 by patient within each DS (the paper: within each source), so that the small DSs
    # have validation patients of both labels too.
    training = training.assign(ds=training.source + training.manufacturer)
    split = pd.Series("test", index=manifest.index)
    split[training.index] = split_patients(training, by="ds", seed=seed)
    write_csv(path, manifest.assign(split=split))


def validation_leakage(run_dir: Path, model: str, seed: int, n_boot: int) -> pd.DataFrame:
    """Segment leakage of one run's best checkpoint on its own validation set (its segments)."""
    val = pd.read_parquet(run_dir / "preds" / "val.parquet")
    with warnings.catch_warnings():  # a single-segment run has no second segment: undefined
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = segment_leakage(
            val.label,
            val.score,
            val[["source", "manufacturer"]],
            n_boot=n_boot,
            resample="cluster",  # whole patients, as in the report
            clusters=val.patient_id,
            seed=seed,
        )
    # The summary's permutation null per label, to read the leakage against (not against 0).
    nulls = {s.label: s.null_q95 for s in (result.benign, result.malignant) if s is not None}
    return result.table.assign(model=model, seed=seed, null_q95=result.table.label.map(nulls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo"))
    parser.add_argument("--quick", action="store_true", help="tiny version (tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-pretrain", action="store_true", help="train every model from scratch instead"
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="train every model N times, with N seeds (default 1)"
    )
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be an integer >= 1; got {args.seeds}.")
    # The same bits on any x86-64 machine with AVX2, not only on this one: the script starts
    # again at once in segtrain's reproducible mode (two threads, AVX2 code paths, no oneDNN).
    reproducible.enter()
    out, started = args.out, time.perf_counter()
    quick = args.quick
    scale, min_label = (0.004, 6) if quick else (0.02, 16)
    steps, val_every = (8, 4) if quick else (240, 40)
    batch = 8 if quick else 24  # quick: S1Mb trains on 8 images, and a batch may not exceed that
    pre_steps, pre_val_every = (8, 4) if quick else (300, 50)
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
        add_split(raw / "manifest.csv", args.seed)
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
    if not args.no_pretrain:
        backbone = out / "runs" / "pretrain"
        if not (backbone / "report.html").is_file():
            pretrain(
                PretrainConfig(
                    manifest=str(raw / "manifest.csv"),
                    lesions=str(raw / "lesions.csv"),
                    segment_by="source,manufacturer",
                    out=str(backbone),
                    steps=pre_steps,
                    val_every=pre_val_every,
                    batch_size=40,
                    lr=1e-3,
                    ema_decay=0.95,
                    image_height=288,
                    image_width=224,
                    width=base.width,
                    workers=2,
                    seed=args.seed,
                    device="cpu",
                ),
                overwrite=True,
                progress=False,
            )
        base = replace(base, init_backbone=str(backbone / "checkpoints" / "best.pt"))
        log(f"backbone pre-trained on lesion patches: {backbone / 'report.html'}", started)
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

    preds, leakage = [], []
    for name, config in runs.items():
        for k in range(args.seeds):
            # Seed 0 keeps the one-seed demo's folder names; the others get a suffix.
            run = name if k == 0 else f"{name}_seed{k}"
            run_dir = out / "runs" / run
            if not (run_dir / "preds" / "val.parquet").is_file():
                seeded = replace(config, out=str(run_dir), seed=args.seed + k)
                fit(seeded, overwrite=True, progress=False)
            target = out / "preds" / f"{run}.parquet"
            predict(
                run_dir / "checkpoints" / "best.pt",
                cache / "test.csv",
                target,
                model_name=name,
                device="cpu",
            )
            if args.seeds > 1:  # one model, several runs: the predictions' run column
                write_parquet(target, pd.read_parquet(target).assign(run=f"seed{args.seed + k}"))
            preds.append(target)
            leakage.append(validation_leakage(run_dir, name, args.seed + k, n_boot))
            log(f"trained and scored {run}", started)
    write_csv(out / "leakage_validation.csv", pd.concat(leakage, ignore_index=True))

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
    for name in runs:  # validation curves of the first seed
        argv += ["--run", str(out / "runs" / name)]
    code = segeval_main(argv)
    log(f"report written: {report}" if code == 0 else "report failed", started)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
