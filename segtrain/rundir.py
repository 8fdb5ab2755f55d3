"""The run folder of ``segtrain fit`` and ``pretrain``: checked before anything is written, resumed.

A folder is *started* once it holds ``checkpoints/last.pt``. A folder that holds only segtrain's
own files and no checkpoint (a run killed before its first validation, even while it wrote one of
them: the temporary file of that write counts as segtrain's) is not: the same command starts it
again, and ``--resume`` starts it from step 0.

One process writes a run folder at a time: it holds an advisory lock on ``RUN/.segtrain.lock``
for the whole run, taken before the folder is checked; a second command is refused. It is a POSIX
record lock (``fcntl.lockf``), which forked children do not inherit: a ``flock`` was inherited by
the DataLoader's worker processes, which outlive a SIGKILLed run for a moment and kept the
restart out. The kernel releases the lock when the process ends, however it ends, so a killed
run never leaves a stale lock (the file it may leave is not a lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
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
    "environment.jsonl",
    "checkpoints",
    "preds",
    "tensorboard",
    "patches.csv",  # pretrain's
    "report.html",
)
LOCK = ".segtrain.lock"
# What a process killed inside ``segeval.io.atomic_write`` leaves beside one of segtrain's files.
_TEMPORARY = re.compile(r"\.(" + "|".join(re.escape(name) for name in OWN) + r")\..+\.tmp")


def is_own(name: str) -> bool:
    """Whether an entry of a run folder is segtrain's (a file, the lock, or a write cut short)."""
    return name in OWN or name == LOCK or _TEMPORARY.fullmatch(name) is not None


@contextlib.contextmanager
def run_lock(out: str | Path) -> Iterator[None]:
    """Hold the run folder's lock (creating the folder) while the block runs; InputError if
    another process holds it. A folder this made and left empty is removed afterwards."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file, not a folder.")
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    try:
        while True:
            handle = open(path, "a+")  # noqa: SIM115 - held open for the whole run
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: held elsewhere
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                raise InputError(
                    f"The run folder {str(out)!r} is being written by another segtrain process"
                    f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it to end or "
                    f"give another --out."
                ) from None
            # The holder before us may have removed the file after we opened it: lock anew.
            if path.exists() and os.fstat(handle.fileno()).st_ino == path.stat().st_ino:
                break
            handle.close()
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still locked: the next writer locks a new file
            handle.close()
    finally:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


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
    foreign = [e.name for e in entries if not is_own(e.name)]
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


def start_run_dir(
    config: RunConfig, split: pd.DataFrame, *, step: int, environment: dict[str, Any]
) -> None:
    """Write config.toml and split.parquet, add ``environment`` (what ran it, from ``step``) to
    environment.jsonl; clear what a run from ``step`` must not keep."""
    out = Path(config.out)
    if step == 0:
        _remove_own(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_text(out / "config.toml", to_toml(config))
    write_parquet(out / "split.parquet", split)
    truncate_log(out / "train.jsonl", step)
    truncate_log(out / "environment.jsonl", step, add=[{"step": step, **environment}])


def discard_unstarted(out: str | Path) -> None:
    """Remove segtrain's files from a run folder that has no checkpoint (the folder itself goes
    with the lock, :func:`run_lock`, if that made it and nothing else is left in it)."""
    out = Path(out)
    if last_checkpoint(out).is_file() or not out.is_dir():
        return
    _remove_own(out)  # the folder itself goes with the lock (``run_lock``), if it made it


def _remove_own(out: Path) -> None:
    """Remove segtrain's own files and folders (``OWN``, and the temporary files of writes cut
    short) from a run folder; the lock stays."""
    for target in out.iterdir() if out.is_dir() else ():
        if target.name == LOCK or not is_own(target.name):
            continue
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


def truncate_log(path: Path, step: int, *, add: list[dict[str, Any]] | None = None) -> None:
    """Keep the records of ``path`` (JSON lines) up to ``step``, since a resumed run redoes the
    rest, and append ``add``; one write."""
    if not path.is_file() and not add:
        return
    kept = []
    for line in path.read_text().splitlines() if path.is_file() else ():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if record.get("step", step + 1) <= step:
            kept.append(line + "\n")
    kept += [json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in add or ()]
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
