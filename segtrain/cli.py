"""The ``segtrain`` command: ``plan``.

The CLI parses options and wires library calls; bad input ends with one sentence on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from segeval.cliutils import positive_int, run


def build_parser() -> argparse.ArgumentParser:
    from segtrain.sampling import STRATEGIES

    parser = argparse.ArgumentParser(
        prog="segtrain",
        description="Periodic-sampling training of classifiers on data pooled from many segments.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = sub.add_parser(
        "plan",
        help="show what each sampling strategy would draw from every data segment",
        description="For each data segment (DS) of a manifest: positives, negatives, n_min (the "
        "rarer label), and per strategy the share p_i of draws, the period 1/p_i, and the "
        "expected draws per 1,000 batches.",
    )
    plan.add_argument("--manifest", required=True, help="manifest, CSV or Parquet")
    plan.add_argument(
        "--segment-by",
        required=True,
        metavar="COLS",
        help="segment columns, comma-separated (e.g. source,manufacturer)",
    )
    plan.add_argument(
        "--strategy",
        action="append",
        choices=STRATEGIES,
        help="strategy to show (repeatable; default: all but single-segment, "
        "and single-segment too with --segment)",
    )
    plan.add_argument("--segment", help="the DS of the single-segment strategy, e.g. '(S1, Ma)'")
    plan.add_argument(
        "--batch-size",
        type=positive_int,
        default=24,
        help="batch size for the expected draws (default: 24)",
    )
    plan.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _plan(args: argparse.Namespace) -> None:
    from segeval.io import to_jsonable
    from segtrain.manifest import read_manifest
    from segtrain.sampling import make_plan, plan_table

    df, segments = read_manifest(args.manifest, args.segment_by, required=("label",))
    strategies = args.strategy or ["periodic", "balanced-segments", "balanced-labels"]
    if args.segment and "single-segment" not in strategies:
        strategies.append("single-segment")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plans = [
            make_plan(
                df["label"].to_numpy(),
                segments,
                s,
                segment=args.segment if s == "single-segment" else None,
            )
            for s in strategies
        ]
    notes = sorted({str(w.message) for w in caught})
    rows = plan_table(plans, batch_size=args.batch_size)
    if args.json:
        print(
            json.dumps(
                to_jsonable({"batch_size": args.batch_size, "rows": rows, "warnings": notes}),
                indent=2,
            )
        )
        return
    print(_side_by_side(rows).to_string())
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def _side_by_side(rows: list[dict[str, object]]) -> pd.DataFrame:
    """One row per DS: its counts, then (p, period, draws) under each strategy."""
    table = pd.DataFrame(rows)
    draws = next(c for c in table.columns if c.startswith("draws_per_"))
    table = table.rename(columns={"proportion": "p", draws: "draws/" + draws.split("_")[2]})
    order = list(dict.fromkeys(table.segment))
    counts = table.drop_duplicates("segment").set_index("segment")[["n_pos", "n_neg", "n_min"]]
    counts.columns = pd.MultiIndex.from_product([["DS"], counts.columns])
    values = ["p", "period", table.columns[-2]]
    wide = table.pivot(index="segment", columns="strategy", values=values)
    wide = wide.swaplevel(axis=1)[list(dict.fromkeys(table.strategy))]
    return counts.join(wide).loc[order].round(3).replace([np.inf], np.nan)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run("segtrain", args, {"plan": _plan})


if __name__ == "__main__":
    sys.exit(main())
