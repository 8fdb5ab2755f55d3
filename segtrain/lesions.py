"""Lesion annotations (DESIGN "Lesion annotations"): the input of ``segtrain pretrain``.

One row per annotated lesion: ``image_id`` (an image of the manifest), ``lesion_class`` (one of
the paper's five patch classes, Table 8) and the box ``x0, y0, x1, y1`` in pixels of the
original image (x to the right, y down, x1 and y1 exclusive). Healthy tissue is annotated like a
lesion: a box inside the breast, away from every lesion. Problems are reported all at once, in
one sentence, before any training starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from segeval.io import check_required_columns, read_table
from segeval.validation import InputError

# The class index is the position here: the backbone's 5 outputs.
LESION_CLASSES = (
    "healthy_tissue",
    "benign_soft_tissue",
    "benign_calcification",
    "malignant_soft_tissue",
    "malignant_calcification",
)
LESION_COLUMNS = ("image_id", "lesion_class", "x0", "y0", "x1", "y1")
BOX = ["x0", "y0", "x1", "y1"]
SHOWN = 5


def _listed(values: Sequence[object]) -> str:
    head = ", ".join(str(v) for v in values[:SHOWN])
    return head + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")


def read_lesions(path: str | Path, image_ids: pd.Series) -> pd.DataFrame:
    """Read and check a lesion table against the manifest's ``image_ids``; raise InputError.

    Returns the table with ``image_id`` as str, the box as floats and a ``class_index`` column.
    """
    name = str(path)
    df = read_table(path, "lesion table")
    check_required_columns(df, LESION_COLUMNS, name, "lesion table")
    if df.empty:
        raise InputError(f"The lesion table {name!r} has no rows.")
    df["image_id"] = df["image_id"].astype(str)
    df["lesion_class"] = df["lesion_class"].astype(str)
    unknown = sorted(set(df["lesion_class"]) - set(LESION_CLASSES))
    if unknown:
        raise InputError(
            f"The lesion table {name!r} has unknown lesion_class value(s) {_listed(unknown)}; "
            f"expected one of {', '.join(LESION_CLASSES)}."
        )
    boxes = df[BOX].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(boxes.to_numpy(float)).all(axis=1)
    bad |= (boxes["x1"] <= boxes["x0"]).to_numpy() | (boxes["y1"] <= boxes["y0"]).to_numpy()
    if bad.any():
        rows = [int(i) + 2 for i in np.flatnonzero(bad)]  # file lines: the header is line 1
        raise InputError(
            f"The lesion table {name!r} has {int(bad.sum())} box(es) that are not numbers with "
            f"x0 < x1 and y0 < y1 (line(s) {_listed(list(rows))})."
        )
    df[BOX] = boxes.astype(float)
    missing = sorted(set(df["image_id"]) - set(image_ids.astype(str)))
    if missing:
        raise InputError(
            f"The lesion table {name!r} names {len(missing)} image_id(s) that are not in the "
            f"manifest: {_listed(list(missing))}."
        )
    df["class_index"] = df["lesion_class"].map(LESION_CLASSES.index).astype(np.int64)
    return df.reset_index(drop=True)


def check_inside(lesions: pd.DataFrame, sizes: Mapping[str, tuple[int, int]], name: str) -> None:
    """Raise if a box leaves its image; ``sizes`` maps image_id to the original (height, width)."""
    height = lesions["image_id"].map(lambda i: sizes[i][0]).to_numpy(float)
    width = lesions["image_id"].map(lambda i: sizes[i][1]).to_numpy(float)
    outside = (
        (lesions["x0"].to_numpy() < 0)
        | (lesions["y0"].to_numpy() < 0)
        | (lesions["x1"].to_numpy() > width)
        | (lesions["y1"].to_numpy() > height)
    )
    if outside.any():
        shown = []
        for r in lesions[outside].itertuples():
            h, w = sizes[str(r.image_id)]
            shown.append(f"{r.image_id} ({r.x0:g}, {r.y0:g}, {r.x1:g}, {r.y1:g}) in {w}x{h}")
        raise InputError(
            f"The lesion table {name!r} has {int(outside.sum())} box(es) outside their image "
            f"(x0, y0, x1, y1 in pixels of the original image, width x height): {_listed(shown)}."
        )
