"""``segtrain prepare``: the deterministic part of the pipeline, done once and cached.

Every image of a manifest is read, preprocessed and saved as a float16 ``.npy`` of the final
size beside a small JSON of what the preprocessing did; a new manifest points at the arrays and
carries lesion boxes in their new pixels and each image's background value. Work is spread over
worker processes with a progress bar. Each file is written atomically, so an interrupted run
resumes where it stopped: images whose array and JSON exist are not redone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segeval.io import atomic_write, write_csv, write_text
from segtrain.images import read_image
from segtrain.manifest import BOX_COLUMNS, lesion_boxes, read_manifest
from segtrain.preprocess import HEIGHT, TARGET_MEAN, WIDTH, preprocess

ARRAYS = "arrays"


def array_name(image_id: str) -> str:
    """A file-system-safe, collision-free file stem for an image id."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", image_id)[:80]
    return f"{safe}-{hashlib.sha1(image_id.encode()).hexdigest()[:8]}"


def _prepare_one(job: tuple[str, str, tuple[float, ...], str, int, int, float]) -> dict[str, Any]:
    source, image_id, box, out_dir, height, width, target_mean = job
    stem = Path(out_dir) / ARRAYS / array_name(image_id)
    meta_path = stem.with_suffix(".json")
    if meta_path.is_file() and stem.with_suffix(".npy").is_file():
        return dict(json.loads(meta_path.read_text()))
    result = preprocess(read_image(source), height=height, width=width, target_mean=target_mean)
    mapped = result.map_box(box) if not np.isnan(box).any() else (np.nan,) * 4
    meta = {
        "image_id": image_id,
        "background": result.background,
        "flipped": result.flipped,
        "breast_fraction": float(result.mask.mean()),
        **{c: (None if np.isnan(v) else v) for c, v in zip(BOX_COLUMNS, mapped, strict=True)},
    }
    atomic_write(
        stem.with_suffix(".npy"),
        lambda tmp: np.save(tmp.open("wb"), result.image.astype(np.float16)),
    )
    write_text(meta_path, json.dumps(meta))  # last: its presence marks the image as done
    return meta


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
    manifest, _ = read_manifest(manifest_path)
    out = Path(out)
    (out / ARRAYS).mkdir(parents=True, exist_ok=True)
    root = Path(manifest_path).parent
    boxes = lesion_boxes(manifest)
    jobs = [
        (str(root / p), str(i), tuple(b), str(out), height, width, target_mean)
        for p, i, b in zip(manifest["path"], manifest["image_id"], boxes, strict=True)
    ]
    results: list[dict[str, Any]] = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for meta in pool.map(_prepare_one, jobs, chunksize=8):
                results.append(meta)
                if progress:
                    progress(1, len(jobs))
    else:
        for job in jobs:
            results.append(_prepare_one(job))
            if progress:
                progress(1, len(jobs))
    meta = pd.DataFrame(results).set_index("image_id").loc[manifest["image_id"].astype(str)]
    prepared = manifest.drop(columns=[c for c in BOX_COLUMNS if c in manifest]).copy()
    prepared["path"] = [f"{ARRAYS}/{array_name(str(i))}.npy" for i in manifest["image_id"]]
    for column in (*BOX_COLUMNS, "background", "flipped", "breast_fraction"):
        prepared[column] = meta[column].to_numpy()
    prepared["height"], prepared["width"] = height, width
    write_csv(out / "manifest.csv", prepared)
    return prepared
