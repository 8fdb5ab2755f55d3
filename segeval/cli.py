"""The ``segeval`` command: ``report``, ``discover``, ``audit`` and ``synth-preds``.

The CLI parses options, calls the library and writes files; bad input ends with one sentence on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from segeval.cliutils import float_list, level, positive_int, printable, run
from segeval.registry import metrics_help
from segeval.validation import InputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segeval",
        description="Global and per-segment evaluation of binary classifiers, with bootstrap "
        "CIs, paired ΔAUC against a baseline, and self-contained reports.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rep = sub.add_parser(
        "report",
        help="evaluate predictions globally and per segment; write HTML, JSON and CSV",
        description="Evaluate one or more predictions files (columns image_id, label, score, "
        "and model or one model per file) globally and per data segment. Writes OUT (HTML) "
        "and, beside it, STEM.json and STEM_*.csv tables with the same numbers (report.html: "
        "report.json, report_metrics.csv, ...).",
    )
    rep.add_argument(
        "--preds",
        action="extend",
        nargs="+",
        required=True,
        metavar="FILE",
        help="predictions files, Parquet or CSV (one or more; repeatable); a quoted pattern "
        "such as 'folder/*.parquet' is evaluated on Dask (Parquet files with a model column; "
        "Poisson resampling; writes the JSON and CSV tables, no HTML)",
    )
    rep.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="evaluate on the Dask cluster of this scheduler (e.g. tcp://127.0.0.1:8786); "
        "without it, a pattern in --preds starts a LocalCluster of worker processes on this "
        "machine (pip install 'segeval[distributed]')",
    )
    rep.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="worker processes of the LocalCluster (default: Dask's choice for this machine)",
    )
    rep.add_argument(
        "--segment-by",
        metavar="COLS",
        help="segment columns, comma-separated; bin a number with name:e1,e2 "
        "(e.g. source,manufacturer or age:50,60,70)",
    )
    rep.add_argument(
        "--baseline",
        action="append",
        metavar="[SEGMENT=]MODEL",
        help="model the others are compared to (paired bootstrap ΔAUC); "
        "SEGMENT=MODEL sets it for one segment, e.g. '(S1, Ma)=single_S1Ma' "
        "(repeatable)",
    )
    rep.add_argument(
        "--run",
        action="extend",
        nargs="+",
        metavar="RUN_DIR",
        help="training run directories: their validation curves (metrics.jsonl) and, with "
        "preds/val.parquet, their segment leakage on validation (one or more; repeatable); "
        "NAME=RUN_DIR names the run, e.g. as the model it trained (default: the folder's name)",
    )
    rep.add_argument(
        "--cluster", metavar="COL", help="resample whole clusters of this column (e.g. patient_id)"
    )
    rep.add_argument(
        "--resample",
        choices=("rows", "stratified", "poisson"),
        default="rows",
        help="bootstrap scheme: rows (Efron, the paper's default), stratified (labels "
        "separately), or poisson (each image, or patient with --cluster, weighted by a Poisson "
        "count that is a function of its id: the same numbers however the data is ordered or "
        "partitioned, in memory or on Dask)",
    )
    rep.add_argument(
        "--metrics",
        metavar="NAMES",
        help="metrics to evaluate per segment with CIs and against the baseline, "
        "comma-separated (default: wll,auc; AUC is always evaluated). "
        + metrics_help().replace("%", "%%"),
    )
    rep.add_argument(
        "--n-boot",
        type=positive_int,
        default=2000,
        help="bootstrap resamples (default: 2000, as the paper)",
    )
    rep.add_argument("--ci", type=level, default=0.95, help="confidence level (default: 0.95)")
    rep.add_argument(
        "--verdict",
        choices=("paper", "symmetric"),
        default="paper",
        help="how a CI and p read as a verdict: the paper's (default; a CI lower bound of exactly "
        "0 counts as an increase) or symmetric (a bound of 0 is not significant either way)",
    )
    rep.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    rep.add_argument(
        "--thresholds",
        type=float_list,
        default=[0.2, 0.4, 0.6, 0.8],
        help="operating-point thresholds (default: 0.2,0.4,0.6,0.8)",
    )
    rep.add_argument(
        "--discover",
        metavar="COLS",
        help="also search the slices of these metadata columns (up to 3 at a time) where each "
        "model's AUC is worse than on the rest, as `segeval discover` does with its defaults "
        "(with --baseline: where each other model's AUC is worse than the baseline's inside the "
        "slice, the paired ΔAUC); a section of the report and STEM_discovery.csv",
    )
    rep.add_argument(
        "--out", default="report.html", type=Path, help="HTML file to write (default: report.html)"
    )

    dis = sub.add_parser(
        "discover",
        help="find the metadata slices where a model's AUC is worse, with family-wise control",
        description="Test every conjunction of up to ORDER metadata columns (both classes "
        "present at MIN_SUPPORT inside the slice and outside it): AUC of the slice vs its "
        "complement (or, with --baseline, the paired ΔAUC inside the slice), bootstrap CIs on "
        "shared resamples, Westfall-Young max-T (or BH/BY) over all slices, and only the "
        "slices no flagged ancestor or refinement explains. Prints the reported slices and "
        "writes every tested slice to OUT.",
    )
    dis.add_argument(
        "--preds",
        action="extend",
        nargs="+",
        required=True,
        metavar="FILE",
        help="predictions files, Parquet or CSV, with the metadata columns",
    )
    dis.add_argument(
        "--columns",
        required=True,
        metavar="COLS",
        help="metadata columns, comma-separated; bin a number at fixed cut points with "
        "name:e1,e2 or name=e1,e2 (e.g. site,view,age=50,60,70)",
    )
    dis.add_argument("--model", help="model to audit (default: the only one)")
    dis.add_argument(
        "--baseline",
        metavar="MODEL",
        help="test the paired ΔAUC of --model against this model inside each slice",
    )
    dis.add_argument(
        "--order", type=positive_int, default=3, help="most conditions in a slice (default: 3)"
    )
    dis.add_argument(
        "--min-support",
        type=positive_int,
        default=20,
        help="least positives and negatives inside a slice and outside it (default: 20)",
    )
    dis.add_argument(
        "--method",
        choices=("max-t", "bh", "by"),
        default="max-t",
        help="max-t: family-wise error (Westfall-Young step-down, default); bh / by: false "
        "discovery rate (Benjamini-Hochberg / -Yekutieli)",
    )
    dis.add_argument("--alpha", type=level, default=0.05, help="error level (default: 0.05)")
    dis.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="flag a slice only if worse by more than this AUC difference (default: 0)",
    )
    dis.add_argument(
        "--cluster", metavar="COL", help="resample whole clusters of this column (e.g. patient_id)"
    )
    dis.add_argument(
        "--n-boot", type=positive_int, default=1000, help="bootstrap resamples (default: 1000)"
    )
    dis.add_argument("--ci", type=level, default=0.95, help="confidence level (default: 0.95)")
    dis.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    dis.add_argument(
        "--out",
        default="slices.csv",
        type=Path,
        help="every tested slice: .csv, or .json with the settings (default: slices.csv)",
    )

    aud = sub.add_parser(
        "audit",
        help="per-segment counts and prevalence of a manifest, with data warnings",
        description="The data table of a manifest (per segment: images, benign, malignant, "
        "prevalence, patients) and warnings: prevalence that differs across segments, segments "
        "with too few positives for a stable AUC, patients in several segments.",
    )
    aud.add_argument("--manifest", required=True, type=Path, help="manifest, CSV or Parquet")
    aud.add_argument(
        "--segment-by", required=True, metavar="COLS", help="segment columns, comma-separated"
    )
    aud.add_argument(
        "--format",
        choices=("text", "json", "html"),
        default="text",
        help="output format (default: text)",
    )
    aud.add_argument("--out", type=Path, help="file to write (default: standard output)")

    syn = sub.add_parser(
        "synth-preds",
        help="write synthetic multi-segment predictions of three simulated models",
        description="Write a predictions file of three simulated models on five segments "
        "(sources x manufacturers), one of which leans on the segment: a data set to try "
        "`segeval report` on.",
    )
    syn.add_argument("--out", required=True, type=Path, help="Parquet or CSV file to write")
    syn.add_argument("--scale", type=float, default=1.0, help="size multiplier (default: 1)")
    syn.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return parser


def _report(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from segeval.evaluation import evaluate
    from segeval.io import predictions_file_records, read_predictions, read_runs

    if args.out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out must name an .html file; got {str(args.out)!r}.")
    if args.scheduler or any(set(str(p)) & set("*?[") for p in args.preds):
        _report_dask(args)
        return
    preds = read_predictions(args.preds)
    runs = read_runs(args.run or ())
    # disable=None: a bar on a terminal, silence in logs and CI.
    with tqdm(desc="bootstrap", unit="resample", disable=None, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total  # known once the segments are
            bar.update(done)

        evaluation = evaluate(
            preds,
            segment_by=args.segment_by,
            baseline=args.baseline,
            metrics=args.metrics,
            verdict_rule=args.verdict,
            training=runs.training,
            validation_predictions=runs.validation,
            n_boot=args.n_boot,
            ci=args.ci,
            cluster=args.cluster,
            resample=args.resample,
            seed=args.seed,
            thresholds=args.thresholds,
            progress=progress,
            discover=args.discover,
        )
    provenance = evaluation.provenance | {
        "command": shlex.join(["segeval", *args.argv]),
        "inputs": [*predictions_file_records(args.preds), *runs.inputs],
    }
    for path in replace(evaluation, provenance=provenance).write(args.out):
        print(printable(f"wrote {path}"))


def _report_dask(args: argparse.Namespace) -> None:
    """``report`` on Dask: the report of the Poisson bootstrap, without what needs every row
    in one place (see :data:`segeval.distributed.NOT_ON_DASK`)."""
    try:
        from segeval.distributed import (
            client_for,
            evaluate_dask,
            parquet_files,
            read_parquet_files,
        )
    except ImportError:  # pragma: no cover - depends on the installation
        raise InputError(
            "Evaluating on Dask needs dask and distributed: pip install 'segeval[distributed]'."
        ) from None
    from tqdm.auto import tqdm

    from segeval.io import predictions_file_records

    if args.resample not in ("rows", "poisson") or args.run:
        raise InputError("On Dask, --resample is poisson and --run is not supported.")
    preds = read_parquet_files(args.preds)
    with (
        client_for(args.scheduler, n_workers=args.workers),
        tqdm(desc="dask", unit="resample", disable=None, leave=False) as bar,
    ):

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done)

        evaluation = evaluate_dask(
            preds,
            segment_by=args.segment_by,
            baseline=args.baseline,
            metrics=args.metrics,
            n_boot=args.n_boot,
            ci=args.ci,
            cluster=args.cluster,
            seed=args.seed,
            verdict_rule=args.verdict,
            progress=progress,
        )
    provenance = evaluation.provenance | {
        "command": shlex.join(["segeval", *args.argv]),
        "inputs": predictions_file_records(parquet_files(args.preds)),
    }
    for path in replace(evaluation, provenance=provenance).write(args.out):
        print(printable(f"wrote {path}"))


def _discover(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from segeval.discover import discover
    from segeval.io import read_predictions

    if args.out.suffix.lower() not in (".csv", ".json"):
        raise InputError(f"--out must end in .csv or .json; got {str(args.out)!r}.")
    preds = read_predictions(args.preds)
    with tqdm(desc="bootstrap", unit="resample", total=args.n_boot, disable=None) as bar:
        found = discover(
            preds,
            args.columns,
            model=args.model,
            baseline=args.baseline,
            order=args.order,
            min_support=args.min_support,
            method=args.method,
            alpha=args.alpha,
            margin=args.margin,
            n_boot=args.n_boot,
            ci=args.ci,
            cluster=args.cluster,
            seed=args.seed,
            progress=bar.update,
        )
    s = found.settings
    print(
        printable(
            f"{s['n_tested']} slices tested ({s['support_rule']}; {s['n_too_small']} too small, "
            f"{s['n_duplicate']} duplicates), estimand {s['estimand']}, {s['method']} at "
            f"{s['alpha']}: {len(found.reported)} reported"
        )
    )
    if len(found.reported):
        shown = found.reported[
            [
                "rank",
                "slice",
                "n",
                "prevalence",
                "auc",
                "auc_ci_low",
                "auc_ci_high",
                "stat",
                "p_adjusted",
            ]
        ]
        print(printable(shown.round(4).to_string(index=False)))
    found.write(args.out)
    print(printable(f"wrote {args.out}"))


def _audit(args: argparse.Namespace) -> None:
    from segeval.audit import audit_data
    from segeval.io import (
        check_label_column,
        check_required_columns,
        check_unique_images,
        read_table,
        to_jsonable,
        write_text,
    )
    from segeval.report import render_audit_html
    from segeval.segments import segment_keys

    frame = read_table(args.manifest, "manifest")
    check_required_columns(frame, ["label"], str(args.manifest), "manifest")
    check_label_column(frame, str(args.manifest))
    check_unique_images(frame, str(args.manifest))
    segments = segment_keys(frame, args.segment_by)
    audit = audit_data(
        frame["label"].astype(int),
        segments,
        patients=frame.get("patient_id"),
    )
    if args.format == "json":
        text = (
            json.dumps(
                to_jsonable({"table": audit.table, "warnings": list(audit.warnings)}), indent=2
            )
            + "\n"
        )
    elif args.format == "html":
        text = render_audit_html(audit, source=str(args.manifest))
    else:
        shown = audit.table.assign(prevalence=(100 * audit.table.prevalence).round(2))
        text = shown.rename(columns={"prevalence": "prevalence %"}).to_string(index=False) + "\n"
        text += "".join(f"warning: {w}\n" for w in audit.warnings) or "no data warning\n"
    if args.out:
        write_text(args.out, text)
        print(printable(f"wrote {args.out}"))
    else:
        sys.stdout.write(text if args.format == "json" else printable(text))


def _synth(args: argparse.Namespace) -> None:
    from segeval.io import write_csv, write_parquet
    from segeval.synthetic import make_predictions

    suffix = args.out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"--out must end in .parquet or .csv; got {str(args.out)!r}.")
    preds = make_predictions(scale=args.scale, seed=args.seed)
    (write_parquet if suffix == ".parquet" else write_csv)(args.out, preds)
    print(printable(f"wrote {args.out} ({len(preds)} rows, {preds.model.nunique()} models)"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the report records its command
    return run(
        "segeval",
        args,
        {"report": _report, "discover": _discover, "audit": _audit, "synth-preds": _synth},
    )


if __name__ == "__main__":
    sys.exit(main())
