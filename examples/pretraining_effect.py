"""What pre-training the backbone changes in the demo: two demo runs, with and without it.

Run:  python examples/demo.py --out demo && python examples/demo.py --no-pretrain --out scratch
      python examples/pretraining_effect.py demo scratch

For each model scored in both folders (``preds/*.parquet``): its global test AUC in both, its
ΔAUC against ``single_S1Ma`` of the same folder, and the paired ΔAUC pre-trained − scratch on
the same test images. Every ΔAUC: 1000 bootstrap resamples of whole patients, seed 0, the
paper's p-value.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import segeval as se

BASELINE = "single_S1Ma"


def scores(folder: Path, model: str, order: pd.Index | None = None) -> pd.DataFrame:
    frame = pd.read_parquet(folder / "preds" / f"{model}.parquet").set_index("image_id")
    return frame if order is None else frame.loc[order]


def delta(a: pd.DataFrame, b: pd.DataFrame, n_boot: int) -> str:
    """ΔAUC = AUC(b) − AUC(a) on the same images, with its CI and p-value."""
    d = se.bootstrap_delta_auc(
        a.label.to_numpy(),
        a.score.to_numpy(),
        b.score.to_numpy(),
        n_boot=n_boot,
        resample="cluster",
        clusters=a.patient_id.to_numpy(),
        seed=0,
    )
    p = "< 0.001" if d.p_value < 0.001 else f"{d.p_value:.3f}"
    return f"{d.delta:+.3f} ({d.ci_low:+.3f}, {d.ci_high:+.3f}), p {p}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pretrained", type=Path, help="folder of `demo.py`")
    parser.add_argument("scratch", type=Path, help="folder of `demo.py --no-pretrain`")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    done = [
        p.stem
        for p in sorted((args.pretrained / "preds").glob("*.parquet"))
        if (args.scratch / "preds" / p.name).is_file()
    ]
    print(
        "| model | test AUC, scratch | test AUC, pre-trained | ΔAUC vs single_S1Ma, scratch "
        "| ΔAUC vs single_S1Ma, pre-trained | pre-trained − scratch |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for model in done:
        a = scores(args.scratch, model)
        b = scores(args.pretrained, model, a.index)
        row = [model, f"{se.roc_auc(a.label, a.score):.3f}", f"{se.roc_auc(b.label, b.score):.3f}"]
        for folder, mine in ((args.scratch, a), (args.pretrained, b)):
            if model == BASELINE or BASELINE not in done:
                row.append("(baseline)" if model == BASELINE else "")
            else:
                row.append(delta(scores(folder, BASELINE, a.index), mine, args.n_boot))
        row.append(delta(a, b, args.n_boot))
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
