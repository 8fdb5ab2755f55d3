"""The manifest: one row per image (DESIGN "Manifest"), read and validated at the boundary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from segeval import Segments, segment_keys
from segeval._validation import InputError
from segeval.io import check_label_column, check_required_columns, read_table

MANIFEST_COLUMNS = ("image_id", "patient_id", "path", "label")


def read_manifest(
    path: str | Path,
    segment_by: str | Sequence[str],
    *,
    required: Sequence[str] = MANIFEST_COLUMNS,
) -> tuple[pd.DataFrame, Segments]:
    """Read a CSV or Parquet manifest and its segments; raise InputError on bad content.

    ``required`` lists the columns the caller needs (``segtrain plan`` needs only ``label``).
    """
    name = str(path)
    df = read_table(path, "manifest")
    check_required_columns(df, required, name, "manifest")
    check_label_column(df, name)
    df["label"] = pd.to_numeric(df["label"]).astype("int8")
    try:
        segments = segment_keys(df, segment_by)
    except ValueError as exc:
        raise InputError(f"Manifest {name!r}: {exc}") from exc
    return df, segments
