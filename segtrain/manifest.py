"""The manifest: one row per image (DESIGN "Manifest"), read and validated at the boundary.

Problems are reported before any training starts, all at once where that helps (every missing
image file is listed, not the first one only).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from segeval import Segments, segment_keys
from segeval.io import check_label_column, check_required_columns, read_table
from segeval.validation import InputError

MANIFEST_COLUMNS = ("image_id", "patient_id", "path", "label")
BOX_COLUMNS = ("lesion_x0", "lesion_y0", "lesion_x1", "lesion_y1")
SHOWN = 10  # names listed in a message before "and N more"


def _listed(values: Sequence[object]) -> str:
    head = ", ".join(str(v) for v in values[:SHOWN])
    return head + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")


def read_manifest(
    path: str | Path,
    segment_by: str | Sequence[str] | None = None,
    *,
    required: Sequence[str] = MANIFEST_COLUMNS,
    check_files: bool = True,
) -> tuple[pd.DataFrame, Segments | None]:
    """Read a CSV or Parquet manifest and its segments (if ``segment_by``); raise InputError.

    ``required`` lists the columns the caller needs (``segtrain plan`` needs only ``label``).
    Image paths are relative to the manifest's folder; with ``check_files`` every missing file
    is reported in one message. A patient found in several segments gives a warning.
    """
    name = str(path)
    df = read_table(path, "manifest")
    check_required_columns(df, required, name, "manifest")
    check_label_column(df, name)
    df["label"] = pd.to_numeric(df["label"]).astype("int8")
    if "image_id" in df:
        df["image_id"] = df["image_id"].astype(str)
        dup = df["image_id"][df["image_id"].duplicated()]
        if len(dup):
            raise InputError(
                f"Manifest {name!r} repeats {len(dup)} image_id(s): {_listed(list(dup.unique()))}."
            )
    try:
        segments = segment_keys(df, segment_by) if segment_by else None
    except InputError as exc:
        raise InputError(f"Manifest {name!r}: {exc}") from exc
    if "patient_id" in df and segments is not None:
        df["patient_id"] = df["patient_id"].astype(str)
        _warn_shared_patients(df, segments, name)
    if check_files and "path" in df:
        root = Path(path).parent
        missing = [p for p in df["path"].astype(str) if not (root / p).is_file()]
        if missing:
            raise InputError(
                f"{len(missing)} image file(s) listed in {name!r} are missing (paths are relative "
                f"to {str(root)!r}): {_listed(missing)}."
            )
    return df, segments


def _warn_shared_patients(df: pd.DataFrame, segments: Segments, name: str) -> None:
    per_patient = pd.Series(segments.codes).groupby(df["patient_id"].to_numpy()).nunique()
    shared = per_patient[per_patient > 1]
    if len(shared):
        warnings.warn(
            f"Manifest {name!r}: {len(shared)} patient(s) appear in several segments "
            f"({_listed(list(shared.index))}); their images are not independent.",
            UserWarning,
            stacklevel=3,
        )


def lesion_boxes(df: pd.DataFrame) -> np.ndarray:
    """The lesion box of each row as (n, 4) floats, NaN where none is given."""
    if not all(c in df for c in BOX_COLUMNS):
        return np.full((len(df), 4), np.nan)
    for column in BOX_COLUMNS:
        values = pd.to_numeric(df[column], errors="coerce")
        bad = df[column][values.isna() & df[column].notna()]
        if len(bad):
            raise InputError(
                f"Column {column!r} of the manifest must hold numbers (pixels); got "
                f"{_listed(list(bad.astype(str).unique()))}."
            )
    return np.asarray(df[list(BOX_COLUMNS)].apply(pd.to_numeric), dtype=float)
