"""``segtrain prepare``: the deterministic part of the pipeline, done once and cached.

Every image of a manifest is read, preprocessed and saved as a float16 ``.npy`` of the final
size beside a small JSON of what the preprocessing did; a new manifest points at the arrays and
carries lesion boxes in their new pixels and each image's background value. Work is spread over
worker processes (which die with the parent) with a progress bar. Each file is written
atomically, so an interrupted run resumes where it stopped: images whose array and JSON exist,
made with the same parameters, are not redone.

``OUT/prepare.json`` records the parameters (size, target mean, preprocessing version). A run
with other parameters first removes ``OUT/manifest.csv``, then recomputes every image, so no
manifest ever points at arrays of two sizes.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import multiprocessing
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segeval.io import atomic_write, write_csv, write_text
from segeval.validation import InputError
from segtrain.images import read_image
from segtrain.manifest import BOX_COLUMNS, lesion_boxes, read_manifest
from segtrain.model import MIN_SIDE
from segtrain.preprocess import HEIGHT, TARGET_MEAN, WIDTH, preprocess

ARRAYS = "arrays"
# Bump when the preprocessing changes what it writes: caches of older versions are recomputed.
VERSION = 2
PARAMS = "prepare.json"


def array_name(image_id: str) -> str:
    """A file-system-safe, collision-free file stem for an image id (dots included)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", image_id)[:80]
    return f"{safe}-{hashlib.sha1(image_id.encode()).hexdigest()[:8]}"


def _prepare_one(job: tuple[str, str, tuple[float, ...], str, dict[str, Any]]) -> dict[str, Any]:
    source, image_id, box, out_dir, params = job
    # Suffixes are appended, never substituted: an id like 1.2.840.113619.0 has dots.
    stem = str(Path(out_dir) / ARRAYS / array_name(image_id))
    meta_path, array_path = Path(stem + ".json"), Path(stem + ".npy")
    if meta_path.is_file() and array_path.is_file():
        meta = dict(json.loads(meta_path.read_text()))
        if meta.get("params") == params and meta.get("image_id") == image_id:
            return meta
    result = preprocess(
        read_image(source),
        height=params["height"],
        width=params["width"],
        target_mean=params["target_mean"],
    )
    x0, y0, x1, y1 = box
    mapped = result.map_box((x0, y0, x1, y1)) if not np.isnan(box).any() else (np.nan,) * 4
    meta = {
        "image_id": image_id,
        "params": params,
        "background": result.background,
        "flipped": result.flipped,
        "breast_fraction": float(result.mask.mean()),
        **{c: (None if np.isnan(v) else v) for c, v in zip(BOX_COLUMNS, mapped, strict=True)},
    }
    atomic_write(array_path, lambda tmp: np.save(tmp.open("wb"), result.image.astype(np.float16)))
    write_text(meta_path, json.dumps(meta))  # last: its presence marks the image as done
    return meta


def check_parameters(height: int, width: int, target_mean: float) -> dict[str, Any]:
    """The parameters as recorded; InputError naming the flag of a bad one."""
    if min(height, width) < MIN_SIDE:
        raise InputError(
            f"--height {height} --width {width} is too small for the model: each side must be "
            f"at least {MIN_SIDE} pixels."
        )
    if not math.isfinite(target_mean) or not 0 < target_mean < 1:
        raise InputError(f"--target-mean must be a number in (0, 1); got {target_mean!r}.")
    return {"version": VERSION, "height": height, "width": width, "target_mean": target_mean}


def prepare(
    manifest_path: str | Path,
    out: str | Path,
    *,
    height: int = HEIGHT,
    width: int = WIDTH,
    target_mean: float = TARGET_MEAN,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Preprocess every image of a manifest into ``out``; write and return the new manifest.

    ``progress(done, total)`` is called as images complete (``done`` of them this time).
    """
    params = check_parameters(height, width, target_mean)
    manifest, _ = read_manifest(manifest_path)
    boxes = lesion_boxes(manifest)
    out = Path(out)
    made = _start(out, params)
    root = Path(manifest_path).parent
    jobs = [
        (str(root / p), str(i), tuple(b), str(out), params)
        for p, i, b in zip(manifest["path"], manifest["image_id"], boxes, strict=True)
    ]
    try:
        results = _run(jobs, workers, progress)
    except InputError:
        _undo_start(out, made)  # a bad image before any array: leave nothing behind
        raise
    ids = manifest["image_id"].astype(str).tolist()
    meta = pd.DataFrame(results).set_index("image_id").loc[ids]
    prepared = manifest.drop(columns=[c for c in BOX_COLUMNS if c in manifest]).copy()
    prepared["path"] = [f"{ARRAYS}/{array_name(str(i))}.npy" for i in manifest["image_id"]]
    for column in (*BOX_COLUMNS, "background", "flipped", "breast_fraction"):
        prepared[column] = meta[column].to_numpy()
    prepared["height"], prepared["width"] = height, width
    write_csv(out / "manifest.csv", prepared)
    return prepared


def _start(out: Path, params: dict[str, Any]) -> list[Path]:
    """Record the parameters; a cache made with others loses its manifest first. Returns what
    this made (folders and ``prepare.json``), for :func:`_undo_start`."""
    made = [p for p in (*reversed((out / ARRAYS).parents), out / ARRAYS) if not p.exists()]
    (out / ARRAYS).mkdir(parents=True, exist_ok=True)
    recorded = out / PARAMS
    previous = json.loads(recorded.read_text()) if recorded.is_file() else None
    if previous != params:
        (out / "manifest.csv").unlink(missing_ok=True)
        write_text(recorded, json.dumps(params, indent=2))
        if previous is None:
            made.append(recorded)
    return made


def _undo_start(out: Path, made: list[Path]) -> None:
    """Remove what :func:`_start` made, if no array was written since (a cache is kept)."""
    if any((out / ARRAYS).iterdir()):
        return
    for path in reversed(made):
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink(missing_ok=True)


def _run(
    jobs: list[tuple[str, str, tuple[float, ...], str, dict[str, Any]]],
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    if workers <= 1:
        for job in jobs:
            results.append(_prepare_one(job))
            if progress:
                progress(1, len(jobs))
        return results
    pool = multiprocessing.get_context("fork").Pool(
        workers, initializer=_worker_init, initargs=(os.getpid(),)
    )
    try:
        for meta in pool.imap(_prepare_one, jobs, chunksize=8):
            results.append(meta)
            if progress:
                progress(1, len(jobs))
        pool.close()
    finally:
        pool.terminate()  # on error or Ctrl-C, stop the workers now; finished files are kept
        pool.join()
    return results


def _worker_init(parent: int) -> None:
    """Make a pool worker die with its parent, and leave Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass  # not Linux: the pool's own clean-up applies
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
