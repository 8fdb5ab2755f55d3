"""The ``segtrain`` command: ``plan``, ``synth``, ``prepare``, ``pretrain``, ``fit``, ``predict``.

The CLI parses options and wires library calls; bad input ends with one sentence on stderr and
exit code 2, never a traceback (argparse's own errors included); Ctrl-C ends with one line and
exit code 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import numpy as np
import pandas as pd

from segeval.cliutils import non_negative_int, positive_int, printable, run
from segeval.validation import InputError
from segtrain import reproducible
from segtrain.sampling import STRATEGIES

PLAN_BATCHES = 1000  # segtrain plan shows the expected draws per this many batches
EXIT_SYSTEM_ERROR = 1  # the machine failed (disk full, permission denied), not the input
EXIT_INTERRUPTED = 130

if TYPE_CHECKING:
    from segtrain.config import RunConfig

C = TypeVar("C", bound="RunConfig")


class SystemFailure(Exception):
    """An OSError of a command: one line and exit code 1, apart from bad input (code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit code 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def scale(text: str) -> float:
    """argparse type: a fraction of Table 1 in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1]; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
        choices=list(STRATEGIES),
        help="strategy to show (repeatable; default: every strategy, single-segment only "
        "with --segment)",
    )
    plan.add_argument(
        "--segment", help="the DS of the single-segment strategy: (S1, Ma), S1,Ma or S1/Ma"
    )
    plan.add_argument(
        "--batch-size",
        type=positive_int,
        default=24,
        help="batch size for the expected draws (default: 24)",
    )
    plan.add_argument("--json", action="store_true", help="print JSON instead of a table")

    syn = sub.add_parser(
        "synth",
        help="write a synthetic multi-source mammography-like data set and its manifest",
        description="Write DICOM or PNG images of synthetic breasts in the segments of the "
        "paper's Table 1 (sizes and prevalences scaled by --scale), with device signatures per "
        "manufacturer, a nuisance cue per source and lesions of the paper's 5 classes, plus "
        "DIR/manifest.csv and DIR/lesions.csv (the lesions of part of one segment's images).",
    )
    syn.add_argument("--out", required=True, type=Path, help="output folder")
    syn.add_argument(
        "--scale",
        type=scale,
        default=0.01,
        help="fraction of Table 1's image counts (default: 0.01; at least 2 images "
        "of each label per segment)",
    )
    syn.add_argument(
        "--segments",
        metavar="S:M,...",
        help="segments to write, e.g. S1:Ma,S2:Ma (default: all nine of Table 1)",
    )
    syn.add_argument(
        "--annotate",
        metavar="S:M",
        help="segment whose lesions are partly annotated in DIR/lesions.csv (default: S1:Ma, "
        "if written)",
    )
    syn.add_argument("--format", choices=("dcm", "png"), default="dcm", help="image format")
    syn.add_argument(
        "--compress", choices=("j2k", "rle"), help="lossless DICOM compression (JPEG 2000 or RLE)"
    )
    syn.add_argument("--height", type=positive_int, default=256, help="image height (256)")
    syn.add_argument("--width", type=positive_int, default=192, help="image width (192)")
    syn.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    prep = sub.add_parser(
        "prepare",
        help="preprocess every image of a manifest once and cache the arrays",
        description="Read, preprocess (resize, breast mask, flip, crop/pad, normalize) and save "
        "every image of a manifest as an array under OUT, with OUT/manifest.csv pointing at "
        "them. Resumes an interrupted run; a run with another size recomputes every array.",
    )
    prep.add_argument("--manifest", required=True, type=Path, help="manifest, CSV or Parquet")
    prep.add_argument("--out", required=True, type=Path, help="cache folder")
    prep.add_argument(
        "--height", type=positive_int, default=1152, help="image height (1152; at least 190)"
    )
    prep.add_argument(
        "--width", type=positive_int, default=832, help="image width (832; at least 190)"
    )
    prep.add_argument(
        "--target-mean",
        type=float,
        default=0.25,
        help="mean pixel value of every image (default: 0.25)",
    )
    prep.add_argument(
        "--workers",
        type=positive_int,
        default=max(1, os.cpu_count() or 1),
        help="worker processes (default: all cores)",
    )
    fit = sub.add_parser(
        "fit",
        help="train a classifier with periodic sampling (or a baseline strategy)",
        description="Train the paper's model. Batches come from the chosen sampling strategy; "
        "the EMA weights are validated every --val-every steps globally and per segment; the "
        "run folder gets config.toml, split.parquet, metrics.jsonl, checkpoints/{last,best}.pt "
        "and preds/val.parquet; train.jsonl logs the loss, environment.jsonl what ran each start "
        "(mode, threads, versions). Ctrl-C stops after the current "
        "step and saves last.pt (exit code 130). Multi-GPU: launch with torchrun.",
    )
    fit.add_argument("--manifest", help="manifest (raw or from segtrain prepare)")
    fit.add_argument(
        "--segment-by", metavar="COLS", help="segment columns, e.g. source,manufacturer"
    )
    fit.add_argument(
        "--strategy", choices=list(STRATEGIES), help="sampling strategy (default: periodic)"
    )
    fit.add_argument(
        "--segment", help="the DS of --strategy single-segment: (S1, Ma), S1,Ma or S1/Ma"
    )
    fit.add_argument(
        "--segments",
        metavar="DS;...",
        help="train and validate on these DSs only, e.g. 'S1/Ma,S2/Ma' or '(S1, Ma);(S2, Ma)'",
    )
    fit.add_argument(
        "--image-size",
        metavar="HxW",
        type=_image_size,
        help="image height x width, each at least 190 (default: the size of a manifest from "
        "segtrain prepare, else 1152x832)",
    )
    _add_training_flags(
        fit,
        steps=150000,
        batch_size=("global batch size", 24),
        lr="1e-4",
        val_every=1000,
        seed="random seed (default: 0)",
        resume="continue the run in RUN (from any folder; other flags may extend --steps)",
    )
    fit.add_argument("--compile", action="store_true", help="torch.compile the model")
    fit.add_argument("--init-backbone", help="checkpoint whose backbone initializes the model")

    _add_pretrain_parser(sub)

    pred = sub.add_parser(
        "predict",
        help="score a manifest with a checkpoint; write the predictions file segeval reads",
        description="Score every image of a manifest with a checkpoint's EMA weights and write "
        "the predictions file (image_id, model, label, score, patient_id, segment columns).",
    )
    pred.add_argument("--checkpoint", required=True, type=Path, help="RUN/checkpoints/best.pt")
    pred.add_argument("--manifest", required=True, type=Path, help="manifest to score")
    pred.add_argument("--model-name", required=True, help="value of the model column")
    pred.add_argument("--out", required=True, type=Path, help="predictions file (.parquet/.csv)")
    pred.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    pred.add_argument("--batch-size", type=positive_int, default=32, help="batch size (32)")
    pred.add_argument(
        "--split",
        choices=("all", "train", "val", "test"),
        default="all",
        help="score one side only: from the manifest's split column, or for train/val from "
        "the run's split.parquet (default: all)",
    )
    pred.add_argument("--segments", metavar="DS;...", help="score these DSs only")
    pred.add_argument("--workers", type=non_negative_int, default=0, help="data loader workers (0)")
    for name in ("synth", "prepare", "pretrain", "fit", "predict"):
        sub.choices[name].add_argument(
            "--reproducible",
            action="store_true",
            help="the same bits on any x86-64 machine with AVX2, not only on this one: two "
            "threads whatever the cores, AVX2 code paths, no oneDNN (see segtrain.reproducible)",
        )
    return parser


def _add_pretrain_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    pre = sub.add_parser(
        "pretrain",
        help="pre-train the backbone on lesion patches (the paper's Appendix A.3)",
        description="Pre-train the backbone to classify patches centred on annotated lesions "
        "into the 5 classes of the lesion table (healthy tissue, benign/malignant soft tissue, "
        "benign/malignant calcification): images preprocessed to --image-size (as for fit), "
        "surjective augmentation, batches balanced over the classes, Adam, EMA, step-based "
        "validation on the patches of fit's validation patients. The run folder gets "
        "config.toml, split.parquet, patches.csv, metrics.jsonl, train.jsonl, environment.jsonl, "
        "report.html and checkpoints/{last,best}.pt; give best.pt to fit --init-backbone.",
    )
    pre.add_argument("--manifest", type=Path, help="the raw manifest (not prepare's)")
    pre.add_argument("--lesions", type=Path, help="lesion table, CSV or Parquet")
    pre.add_argument("--segment-by", metavar="COLS", help="segment columns, as for fit")
    pre.add_argument(
        "--image-size", metavar="HxW", type=_image_size, help="fit's image size (1152x832)"
    )
    pre.add_argument("--patch-size", type=positive_int, help="patch side (default: 224)")
    _add_training_flags(
        pre,
        steps=20000,
        batch_size=("batch size", 64),
        lr="1e-3",
        val_every=500,
        seed="random seed, also of the split (default: 0)",
        resume="continue the run in RUN (from any folder; other flags may extend --steps)",
    )


def _add_training_flags(
    parser: argparse.ArgumentParser,
    *,
    steps: int,
    batch_size: tuple[str, int],
    lr: str,
    val_every: int,
    seed: str,
    resume: str,
) -> None:
    """The flags fit and pretrain share (:func:`_training_settings` reads them), with each
    command's defaults in the help."""
    parser.add_argument("--out", type=Path, help="run folder")
    parser.add_argument("--steps", type=positive_int, help=f"training steps (default: {steps})")
    parser.add_argument(
        "--batch-size", type=positive_int, help=f"{batch_size[0]} (default: {batch_size[1]})"
    )
    parser.add_argument("--lr", type=float, help=f"Adam learning rate (default: {lr})")
    parser.add_argument("--ema-decay", type=float, help="EMA decay (default: 0.99)")
    parser.add_argument(
        "--val-every", type=positive_int, help=f"steps between validations ({val_every})"
    )
    parser.add_argument("--model-width", type=float, help="model channel multiplier (default: 1)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=non_negative_int, help="data loader workers (default: 2)")
    parser.add_argument("--seed", type=non_negative_int, help=seed)
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--resume", type=Path, metavar="RUN", help=resume)
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--config", type=Path, help="TOML file of settings (flags override it)")
    parser.add_argument(
        "--log-every",
        type=positive_int,
        help="steps between progress lines and train.jsonl records (default: 100)",
    )
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log to RUN/tensorboard (needs the tensorboard package)",
    )


def _pretrain(args: argparse.Namespace) -> None:
    from segtrain.loop import TrainingError
    from segtrain.pretrain import PretrainConfig, pretrain, read_records
    from segtrain.pretrain_report import summary

    config = _resolve_settings(
        args, PretrainConfig, lesions=_str(args.lesions), patch_size=args.patch_size
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            run_dir = pretrain(config, resume=args.resume is not None, overwrite=args.overwrite)
        except TrainingError as exc:
            raise InputError(str(exc)) from exc
    for note in sorted({str(w.message) for w in caught}):
        print(f"warning: {note}", file=sys.stderr)
    print(summary(read_records(run_dir)))
    print(f"wrote {run_dir} (report: {run_dir / 'report.html'})")


def _resolve_settings(args: argparse.Namespace, kind: type[C], **own: Any) -> C:
    """``kind``'s settings from the flags fit and pretrain share, the command's ``own``, and a
    config file: ``--config``'s, or with ``--resume RUN`` the run's ``config.toml``."""
    from segtrain.config import resolve

    config_file, out = args.config, args.out
    if args.resume is not None:
        config_file = args.resume / "config.toml"
        if not config_file.is_file():
            raise InputError(
                f"--resume: {str(args.resume)!r} is not a segtrain run (no config.toml)."
            )
        out = args.resume
    return resolve(
        config_file,
        kind,
        **_training_settings(args),
        **own,
        manifest=_str(args.manifest),
        out=_str(out),
    )


def _image_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 1152x832; got {text!r}") from None
    return height, width


def _fit(args: argparse.Namespace) -> None:
    from segtrain.config import TrainConfig
    from segtrain.train import TrainingError, fit

    config = _resolve_settings(
        args,
        TrainConfig,
        strategy=args.strategy,
        segment=args.segment,
        segments=args.segments,
        compile=True if args.compile else None,
        init_backbone=args.init_backbone,
    )
    try:
        with _warnings_as_lines():
            run_dir = fit(config, resume=args.resume is not None, overwrite=args.overwrite)
    except TrainingError as exc:
        raise InputError(str(exc)) from exc
    print(f"wrote {run_dir}")


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Warnings on stderr as they come, each one "warning: ..." line (as pretrain prints them
    at its end), not Python's file:line and source line."""

    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _training_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that fit and pretrain share, as their config fields (None: not given)."""
    height, width = args.image_size or (None, None)
    return dict(
        segment_by=args.segment_by,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        ema_decay=args.ema_decay,
        val_every=args.val_every,
        image_height=height,
        image_width=width,
        width=args.model_width,
        device=args.device,
        workers=args.workers,
        seed=args.seed,
        augment=False if args.no_augment else None,
        log_every=args.log_every,
        tensorboard=True if args.tensorboard else None,
    )


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _predict(args: argparse.Namespace) -> None:
    from segtrain.predict import predict

    preds = predict(
        args.checkpoint,
        args.manifest,
        args.out,
        model_name=args.model_name,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        split=args.split,
        segments=args.segments,
    )
    print(f"wrote {args.out} ({len(preds)} predictions)")


def _plan(args: argparse.Namespace) -> None:
    from segeval.io import to_jsonable
    from segtrain.manifest import read_manifest
    from segtrain.sampling import check_sampling_input, plan_checked, plan_table
    from segtrain.selection import parse_segment_name

    df, segments = read_manifest(
        args.manifest, args.segment_by, required=("label",), check_files=False
    )
    assert segments is not None
    if args.segment:
        args.segment = parse_segment_name(args.segment, segments, "--segment")
    strategies = args.strategy or [
        name for name, spec in STRATEGIES.items() if args.segment or not spec.needs_segment
    ]
    y, segments = check_sampling_input(df["label"].to_numpy(), segments)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plans = [
            plan_checked(
                y, segments, s, segment=args.segment if STRATEGIES[s].needs_segment else None
            )
            for s in strategies
        ]
    notes = sorted({str(w.message) for w in caught})
    rows = plan_table(plans, n_batches=PLAN_BATCHES, batch_size=args.batch_size)
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


def _synth(args: argparse.Namespace) -> None:
    from segtrain.synth import make_dataset

    segments: list[tuple[str, str]] | None = None
    if args.segments:
        pairs = [part.split(":") for part in args.segments.split(",")]
        if any(len(pair) != 2 for pair in pairs):
            raise InputError(f"--segments must look like S1:Ma,S2:Mb; got {args.segments!r}.")
        segments = [(source, maker) for source, maker in pairs]
    annotate = tuple((args.annotate or "S1:Ma").split(":"))
    if len(annotate) != 2:
        raise InputError(f"--annotate must look like S1:Ma; got {args.annotate!r}.")
    if args.annotate and segments is not None and annotate not in segments:
        raise InputError(f"--annotate {args.annotate} is not among --segments {args.segments}.")
    manifest = make_dataset(
        args.out,
        scale=args.scale,
        segments=segments,
        image_format=args.format,
        compress=args.compress,
        height=args.height,
        width=args.width,
        seed=args.seed,
        annotate=(annotate[0], annotate[1]),
    )
    print(f"wrote {len(manifest)} images, {args.out / 'manifest.csv'}", end="")
    lesions = args.out / "lesions.csv"
    print(f" and {lesions}" if lesions.is_file() else "")


def _prepare(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from segtrain.prepare import prepare

    lines = not sys.stdout.isatty()
    done = 0

    with tqdm(desc="prepare", unit="image", disable=None) as bar:

        def progress(count: int, total: int) -> None:
            nonlocal done
            bar.total = total  # known once prepare has read the manifest, which it reads once
            bar.update(count)
            done += count
            if lines and (done % max(1, total // 10) == 0 or done == total):
                print(f"prepared {done}/{total} images", flush=True)

        try:
            prepared = prepare(
                args.manifest,
                args.out,
                height=args.height,
                width=args.width,
                target_mean=args.target_mean,
                workers=args.workers,
                progress=progress,
            )
        except KeyboardInterrupt:
            raise KeyboardInterrupt(
                f"interrupted after {done} images; the arrays written are kept: run the same "
                f"command again to continue."
            ) from None
    print(f"wrote {len(prepared)} arrays and {args.out / 'manifest.csv'}")


def _side_by_side(rows: list[dict[str, object]]) -> pd.DataFrame:
    """One row per DS: its counts, then (p, period, draws) under each strategy."""
    draws = f"draws/{PLAN_BATCHES}"
    table = pd.DataFrame(rows).rename(
        columns={"proportion": "p", f"draws_per_{PLAN_BATCHES}_batches": draws}
    )
    order = list(dict.fromkeys(table.segment))
    counts = table.drop_duplicates("segment").set_index("segment")[["n_pos", "n_neg", "n_min"]]
    counts.columns = pd.MultiIndex.from_product([["DS"], counts.columns])
    wide = table.pivot(index="segment", columns="strategy", values=["p", "period", draws])
    wide = wide.swaplevel(axis=1)[list(dict.fromkeys(table.strategy))]
    return counts.join(wide).loc[order].round(3).replace([np.inf], np.nan)


def _system_errors_apart(
    command: Callable[[argparse.Namespace], None],
) -> Callable[[argparse.Namespace], None]:
    """``command``, its OSErrors raised as :class:`SystemFailure` (``run`` would call them bad
    input; files the user named and cannot be read are InputErrors already)."""

    def wrapped(args: argparse.Namespace) -> None:
        try:
            command(args)
        except OSError as exc:
            raise SystemFailure(str(exc)) from exc

    return wrapped


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return int(exc.code or 0)
    commands = {
        "plan": _plan,
        "synth": _synth,
        "prepare": _prepare,
        "pretrain": _pretrain,
        "fit": _fit,
        "predict": _predict,
    }
    if getattr(args, "reproducible", False):
        if argv is not None and reproducible.active() is None:
            # Called from Python: re-executing would replace the caller's process.
            print(
                "segtrain: error: --reproducible must take effect before torch starts: run the "
                "segtrain command, or call segtrain.reproducible.enter() first.",
                file=sys.stderr,
            )
            return 2
        reproducible.enter()
    try:
        return run("segtrain", args, {args.command: _system_errors_apart(commands[args.command])})
    except SystemFailure as exc:
        print(printable(f"segtrain {args.command}: system error: {exc}"), file=sys.stderr)
        return EXIT_SYSTEM_ERROR
    except KeyboardInterrupt as exc:  # fit's Interrupted says how to resume; prepare's, too
        print(f"segtrain {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
