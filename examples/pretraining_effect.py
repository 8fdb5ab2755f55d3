"""What pre-training the backbone changes in the demo: two demo runs, with and without it.

Run:  python examples/demo.py --out demo && python examples/demo.py --no-pretrain --out scratch
      python examples/pretraining_effect.py demo scratch

For each model: its global test AUC in both runs, its ΔAUC against the (S1, Ma) baseline of
the same run (read from each run's report.json), and the paired ΔAUC pre-trained − scratch on
the same test images (1000 bootstrap resamples by patient, the paper's p-value).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

import segeval as se


def global_comparisons(run: Path) -> pd.DataFrame:
    rows = json.loads((run / "report.json").read_text())["comparisons"]
    frame = pd.DataFrame(rows)
    return frame[frame.segment == "__global__"].set_index("model")


def vs_baseline(table: pd.DataFrame, model: str) -> str:
    if model not in table.index:
        return "(baseline)"
    r = table.loc[model]
    return f"{r.delta_auc:+.3f} ({r.delta_ci_low:+.3f}, {r.delta_ci_high:+.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pretrained", type=Path, help="folder of `demo.py`")
    parser.add_argument("scratch", type=Path, help="folder of `demo.py --no-pretrain`")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    with_, without = global_comparisons(args.pretrained), global_comparisons(args.scratch)
    print("| model | AUC scratch | AUC pre-trained | ΔAUC vs baseline, scratch | ΔAUC vs baseline, "
          "pre-trained | pre-trained − scratch (95% CI), p |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    models = sorted(p.stem for p in (args.pretrained / "preds").glob("*.parquet"))
    for model in models:
        a = pd.read_parquet(args.scratch / "preds" / f"{model}.parquet").set_index("image_id")
        b = pd.read_parquet(args.pretrained / "preds" / f"{model}.parquet").set_index("image_id")
        b = b.loc[a.index]
        d = se.bootstrap_delta_auc(
            a.label.to_numpy(),
            a.score.to_numpy(),
            b.score.to_numpy(),
            n_boot=args.n_boot,
            resample="cluster",
            clusters=a.patient_id.to_numpy(),
            seed=0,
        )

        print(
            f"| {model} | {se.roc_auc(a.label, a.score):.3f} | {se.roc_auc(b.label, b.score):.3f} "
            f"| {vs_baseline(without, model)} | {vs_baseline(with_, model)} | {d.delta:+.3f} "
            f"({d.ci_low:+.3f}, {d.ci_high:+.3f}), p = {d.p_value:.3f} |"
        )


if __name__ == "__main__":
    main()
