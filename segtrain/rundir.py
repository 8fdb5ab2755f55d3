"""The run folder of ``segtrain fit`` and ``pretrain``: checked before anything is written, resumed.

A folder is *started* once it holds ``checkpoints/last.pt``. A folder that holds only segtrain's
own files and no checkpoint (a run killed before its first validation) is not: the same ``fit``
command starts it again, and ``--resume`` starts it from step 0.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from segeval.io import to_jsonable, write_parquet, write_text
from segeval.validation import InputError
from segtrain.checkpoint import load_checkpoint, save_checkpoint
from segtrain.config import RunConfig, TrainConfig, to_toml

OWN = (
    "config.toml",
    "split.parquet",
    "metrics.jsonl",
    "train.jsonl",
    "checkpoints",
    "preds",
    "tensorboard",
    "patches.csv",  # pretrain's
    "report.html",
)


def last_checkpoint(out: str | Path) -> Path:
    return Path(out) / "checkpoints" / "last.pt"


def check_run_dir(config: RunConfig, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check the run folder (writing nothing); return the checkpoint to resume from, if any."""
    out = Path(config.out)
    last = last_checkpoint(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file, not a folder.")
    if resume:
        if not (out / "config.toml").is_file():
            raise InputError(f"--resume: {str(out)!r} is not a segtrain run (no config.toml).")
        if not last.is_file():
            return None  # killed before its first checkpoint: start from step 0
        state = load_checkpoint(last)
        changed = config_of(state, last, type(config)).differences(config)
        if changed:
            flags = ", ".join("--" + c.replace("_", "-") for c in changed)
            raise InputError(f"--resume: the run {str(out)!r} was made with other {flags}.")
        return state
    entries = list(out.iterdir()) if out.is_dir() else []
    foreign = [e.name for e in entries if e.name not in OWN]
    if (foreign or last.is_file()) and not overwrite:
        raise InputError(
            f"The output folder {str(out)!r} is not empty; give --resume to continue that run "
            f"or --overwrite to replace it."
        )
    return None


def config_of(state: dict[str, Any], path: Path, kind: type[RunConfig] = TrainConfig) -> RunConfig:
    """The configuration saved in a checkpoint of ``kind`` (fit's, unless told)."""
    made_by = state.get("kind", TrainConfig.KIND)  # fit checkpoints before 'kind' were fit's
    if made_by != kind.KIND:
        raise InputError(
            f"{str(path)!r} is a checkpoint of segtrain {made_by}, not of segtrain {kind.KIND}."
        )
    try:
        return kind(**state["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"The checkpoint {str(path)!r} is not a complete segtrain checkpoint (its config "
            f"cannot be read: {str(exc).splitlines()[0]})."
        ) from exc


def start_run_dir(config: RunConfig, split: pd.DataFrame, *, step: int) -> None:
    """Write config.toml and split.parquet; clear what a run from ``step`` must not keep."""
    out = Path(config.out)
    if step == 0:
        _remove_own(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_text(out / "config.toml", to_toml(config))
    write_parquet(out / "split.parquet", split)
    truncate_log(out / "train.jsonl", step)


def discard_unstarted(out: str | Path) -> None:
    """Remove segtrain's files from a run folder that has no checkpoint (and the folder, if
    nothing else is left in it)."""
    out = Path(out)
    if last_checkpoint(out).is_file() or not out.is_dir():
        return
    _remove_own(out)
    if not any(out.iterdir()):
        out.rmdir()


def _remove_own(out: Path) -> None:
    """Remove segtrain's own files and folders (``OWN``) from a run folder."""
    for name in OWN:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def truncate_log(path: Path, step: int) -> None:
    """Keep the records of ``path`` (JSON lines) up to ``step``: a resumed run redoes the rest."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if record.get("step", step + 1) <= step:
            kept.append(line + "\n")
    write_text(path, "".join(kept))


def write_validation(
    out: str | Path, checkpoint: dict[str, Any], records: list[dict[str, Any]], *, improved: bool
) -> None:
    """After a validation: best.pt when it improved, last.pt, and metrics.jsonl (every record)."""
    folder = Path(out) / "checkpoints"
    if improved:
        save_checkpoint(folder / "best.pt", checkpoint)
    save_checkpoint(folder / "last.pt", checkpoint)
    write_text(
        Path(out) / "metrics.jsonl",
        "".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in records),
    )
