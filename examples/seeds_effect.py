"""Does periodic sampling help? The tables of ``examples/README.md`` from a demo run with seeds.

Run:  python examples/demo.py --seeds 5 --out demo5
      python examples/seeds_effect.py demo5

Prints three Markdown tables, every interval over the test images *and* the training seeds
(:func:`segeval.bootstrap_delta_auc_runs`: Δ ± t·SE with the image bootstrap variance and the
between-seed variance; 1000 resamples of whole patients, seed 0):

1. every strategy against the ``single_S1Ma`` baseline, globally (the report's "Across
   training seeds" rows, with each seed's ΔAUC);
2. periodic sampling against the other two strategies of the same experiment, globally and
   per test segment (how many segments are significantly better or worse by the paper's
   verdict, before and after Holm over that experiment's comparisons);
3. segment leakage per strategy: on each run's validation set (``leakage_validation.csv``) and
   on the test set (the report's ``leakage_runs``), benign images, the segment farthest from
   0.5: mean and range of ``|AUC − 0.5|`` over the seeds, and how many seeds set a segment
   apart (Holm p < 0.05).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

import segeval as se

EXPERIMENTS = ("exp1", "exp2")
OTHERS = ("bal_labels", "bal_segments")


def ci(d: float, low: float, high: float) -> str:
    return f"{d:+.3f} ({low:+.3f}, {high:+.3f})"


def p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def against_baseline(report: dict) -> None:
    rows = [r for r in report["recipe_comparisons"] if r["segment"] == "__global__"]
    per_seed = pd.DataFrame(report["run_deltas"]).query("segment == '__global__'")
    print("| model | runs | mean AUC | ΔAUC vs single_S1Ma (CI, images and seeds) | CI, images "
          "only | p | verdict (Holm) | ΔAUC of each seed |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        seeds = per_seed[per_seed.model == r["model"]].delta_auc
        print(
            f"| {r['model']} | {r['n_runs']} | {r['auc']:.3f} | "
            f"{ci(r['delta_auc'], r['delta_ci_low'], r['delta_ci_high'])} | "
            f"({r['images_ci_low']:+.3f}, {r['images_ci_high']:+.3f}) | {p_text(r['p_value'])} "
            f"| {r['verdict_holm']} | {', '.join(f'{d:+.3f}' for d in seeds)} |"
        )


def runs_matrix(preds: pd.DataFrame, model: str) -> np.ndarray:
    """(runs, images) scores of one model, images in ``image_id`` order."""
    mine = preds[preds.model == model].sort_values(["run", "image_id"])
    return np.stack([g.score.to_numpy() for _, g in mine.groupby("run", sort=True)])


def periodic_against_others(preds: pd.DataFrame, n_boot: int) -> None:
    reference = preds[preds.model == preds.model.iloc[0]]
    reference = reference[reference.run == reference.run.iloc[0]].sort_values("image_id")
    y = reference.label.to_numpy()
    patients = reference.patient_id.to_numpy()
    segments = se.segment_keys(reference, "source,manufacturer")
    print("| experiment | periodic − | ΔAUC, global (CI, images and seeds) | p | segments "
          "better / worse (paper's verdict) | after Holm |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for exp in EXPERIMENTS:
        periodic = runs_matrix(preds, f"{exp}_periodic")
        for other in OTHERS:
            a = runs_matrix(preds, f"{exp}_{other}")
            results = [
                se.bootstrap_delta_auc_runs(
                    y[idx], a[:, idx], periodic[:, idx], n_boot=n_boot, seed=0,
                    resample="cluster", clusters=patients[idx],
                )
                for idx in [np.arange(y.size), *segments.rows()]
            ]  # fmt: skip
            whole, local = results[0], results[1:]
            adjusted = se.holm(np.array([r.p_value for r in results]))[1:]
            sign = [np.sign(r.delta) for r in local]
            plain = [r.verdict for r in local]
            held = [s for s, p in zip(sign, adjusted, strict=True) if p < 0.05]
            print(
                f"| {exp} | {other} | {ci(whole.delta, whole.ci_low, whole.ci_high)} | "
                f"{p_text(whole.p_value)} | {plain.count('significant increase')} / "
                f"{plain.count('significant decrease')} of {len(local)} | "
                f"{held.count(1)} / {held.count(-1)} |"
            )


def leakage(folder: Path, report: dict) -> None:
    val = pd.read_csv(folder / "leakage_validation.csv").query("label == 'benign'")
    val = val.assign(leak=(val.auc - 0.5).abs())
    worst = val.loc[val.groupby(["model", "seed"]).leak.idxmax()]
    test = pd.DataFrame(report["leakage_runs"]).query("label == 'benign' and on == 'evaluated set'")
    # Leakage = |AUC − 0.5| (no pipes in a Markdown table's header).
    print("| model | validation leakage, mean (range) | null 95th pct., mean | seeds apart | "
          "segment (seeds) | test leakage, mean (range) | null 95th pct., mean | "
          "seeds apart |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model, group in test.set_index("model").iterrows():
        mine = worst[worst.model == model]
        if len(mine):
            seg = "; ".join(f"{s} ×{n}" for s, n in mine.segment.value_counts().items())
            null = mine.null_q95.mean() if "null_q95" in mine else float("nan")
            on_val = (
                f"{mine.leak.mean():.3f} ({mine.leak.min():.3f} to {mine.leak.max():.3f}) | "
                f"{null:.3f} | {int((mine.p_value_holm < 0.05).sum())} of {len(mine)} | {seg}"
            )
        else:
            on_val = "one segment | – | – | –"
        print(
            f"| {model} | {on_val} | {group.leakage_mean:.3f} ({group.leakage_min:.3f} to "
            f"{group.leakage_max:.3f}) | {group.null_q95_mean:.3f} | "
            f"{group.n_runs_significant} of {group.n_runs} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of `demo.py --seeds N`")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    report = json.loads((args.folder / "report.json").read_text())
    # model: the model each run belongs to (runs stay in the run column)
    preds = se.io.read_predictions(sorted((args.folder / "preds").glob("*.parquet")))
    against_baseline(report)
    print()
    periodic_against_others(preds, args.n_boot)
    print()
    leakage(args.folder, report)


if __name__ == "__main__":
    main()
