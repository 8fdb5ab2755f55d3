"""Data segments: the one helper both packages use to turn rows into segment keys.

A segment is one combination of values of the ``segment_by`` columns, e.g. ``source=S1,
manufacturer=Ma``, displayed as ``(S1, Ma)``. A continuous column is binned with ``name:e1,e2,...``
(for example ``age:50,60,70`` gives ``<50``, ``[50,60)``, ``[60,70)``, ``>=70``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from segeval.validation import InputError, check_consistent_length

__all__ = [
    "GLOBAL",
    "SegmentColumn",
    "Segments",
    "as_segments",
    "display_name",
    "parse_segment_by",
    "segment_keys",
    "with_global",
]

GLOBAL = "__global__"


@dataclass(frozen=True)
class SegmentColumn:
    """One entry of ``segment_by``: a column name and, for a continuous column, its bin edges."""

    name: str
    edges: tuple[float, ...] = ()

    def labels(self) -> list[str]:
        """Bin labels in order (empty for a categorical column)."""
        if not self.edges:
            return []
        e = [_fmt(v) for v in self.edges]
        inner = [f"[{a},{b})" for a, b in itertools.pairwise(e)]
        return [f"<{e[0]}", *inner, f">={e[-1]}"]


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


@dataclass(frozen=True)
class Segments:
    """Segment membership of each row.

    Attributes
    ----------
    codes : ndarray of shape (n,)
        Index into ``names`` for each row.
    names : tuple of str
        Display names, in sorted order of their values.
    values : tuple of tuple of str
        For each segment, its value in each column of ``columns``.
    columns : tuple of str
        The segment_by column names.
    """

    codes: NDArray[np.intp]
    names: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def counts(self) -> NDArray[np.intp]:
        """Rows per segment."""
        return np.bincount(self.codes, minlength=len(self.names))

    def rows(self) -> list[NDArray[np.intp]]:
        """Row indices of each segment, in segment order."""
        order = np.argsort(self.codes, kind="stable")
        return np.split(order, np.cumsum(self.counts())[:-1])


def with_global(segments: Segments | None, n: int) -> list[tuple[str, NDArray[np.intp]]]:
    """(name, row indices) of the whole set (``__global__``) and then of each segment."""
    parts: list[tuple[str, NDArray[np.intp]]] = [(GLOBAL, np.arange(n))]
    if segments is not None:
        parts += list(zip(segments.names, segments.rows(), strict=True))
    return parts


def parse_segment_by(segment_by: str | Sequence[str]) -> list[SegmentColumn]:
    """Parse ``"source,manufacturer"`` or ``["source", "age:50,60"]`` into segment columns.

    Examples
    --------
    >>> parse_segment_by("source,age:50,60")
    [SegmentColumn(name='source', edges=()), SegmentColumn(name='age', edges=(50.0, 60.0))]
    """
    if isinstance(segment_by, str):
        # A comma inside a binning spec belongs to it: "age:50,60,source" is ambiguous, so numbers
        # after a "name:" are edges and the first non-number starts the next column.
        parts: list[str] = []
        for token in segment_by.split(","):
            token = token.strip()
            if parts and ":" in parts[-1] and _is_number(token):
                parts[-1] += "," + token
            else:
                parts.append(token)
    else:
        parts = [str(p).strip() for p in segment_by]
    if not parts or any(not p for p in parts):
        raise InputError(f"segment_by must name at least one column; got {segment_by!r}.")
    columns = [_parse_one(p) for p in parts]
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise InputError(f"segment_by names a column twice; got {segment_by!r}.")
    return columns


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _parse_one(spec: str) -> SegmentColumn:
    if ":" not in spec:
        return SegmentColumn(spec)
    name, _, rest = spec.partition(":")
    try:
        edges = tuple(float(v) for v in rest.split(","))
    except ValueError:
        raise InputError(
            f"Bin edges of segment column {name!r} must be numbers like 'age:50,60,70'; "
            f"got {spec!r}."
        ) from None
    if not edges or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise InputError(
            f"Bin edges of segment column {name!r} must increase strictly; got {spec!r}."
        )
    return SegmentColumn(name.strip(), edges)


def _column_codes(frame: pd.DataFrame, col: SegmentColumn) -> tuple[NDArray[np.intp], list[str]]:
    if col.name not in frame.columns:
        available = ", ".join(map(str, frame.columns))
        raise InputError(f"Segment column {col.name!r} not found; available columns: {available}.")
    series = frame[col.name]
    missing = int(series.isna().sum())
    if missing:
        raise InputError(f"Segment column {col.name!r} has {missing} missing value(s).")
    if col.edges:
        if not pd.api.types.is_numeric_dtype(series):
            raise InputError(
                f"Segment column {col.name!r} is binned but is not numeric (dtype {series.dtype})."
            )
        codes = np.searchsorted(np.asarray(col.edges), series.to_numpy(float), side="right")
        return codes.astype(np.intp), col.labels()
    try:
        codes, categories = pd.factorize(series, sort=True)  # hashing: fast on millions of rows
    except TypeError:  # values that do not sort together (e.g. numbers and strings)
        codes, categories = pd.factorize(series.astype(str), sort=True)
    names = [str(c) for c in categories]
    if len(set(names)) != len(names):
        raise InputError(
            f"Segment column {col.name!r} has distinct values that print alike: {names}."
        )
    return codes.astype(np.intp), names


def segment_keys(frame: pd.DataFrame, segment_by: str | Sequence[str]) -> Segments:
    """Segment keys of the rows of ``frame`` for the ``segment_by`` columns.

    Segments are ordered by their values (bins in bin order); only combinations present in the
    data are kept.

    Examples
    --------
    >>> df = pd.DataFrame({"source": ["S2", "S1", "S1"], "manufacturer": ["Ma", "Mb", "Ma"]})
    >>> seg = segment_keys(df, "source,manufacturer")
    >>> seg.names, seg.codes.tolist()
    (('(S1, Ma)', '(S1, Mb)', '(S2, Ma)'), [2, 1, 0])
    """
    columns = parse_segment_by(segment_by)
    if len(frame) == 0:
        raise InputError("Cannot form segments of an empty table.")
    per_column = [_column_codes(frame, c) for c in columns]
    radix = [len(labels) for _, labels in per_column]
    if float(np.prod(radix, dtype=np.float64)) < 2**62:
        # One integer per combination (mixed radix, so integer order = lexicographic order), then
        # a hashing factorize: fast on millions of rows.
        key = np.zeros(len(frame), dtype=np.int64)
        for (codes, _), size in zip(per_column, radix, strict=True):
            key = key * size + codes
        inverse, present = pd.factorize(key, sort=True)
        combos = (
            np.stack(np.unravel_index(present, radix), axis=1)
            if len(radix) > 1
            else (present[:, None])
        )
    else:
        stacked = np.stack([codes for codes, _ in per_column], axis=1)
        combos, inverse = np.unique(stacked, axis=0, return_inverse=True)
    values = tuple(tuple(per_column[j][1][k] for j, k in enumerate(row)) for row in combos.tolist())
    return Segments(
        codes=inverse.reshape(-1).astype(np.intp),
        names=tuple(display_name(v) for v in values),
        values=values,
        columns=tuple(c.name for c in columns),
    )


def display_name(values: Sequence[str]) -> str:
    """``(S1, Ma)`` for several columns, the bare value for one."""
    return values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"


def as_segments(
    segments: Segments | pd.DataFrame | pd.Series | ArrayLike, n: int, against: str = "y_true"
) -> Segments:
    """Accept a :class:`Segments`, a DataFrame of segment columns, or one label per row.

    A 2-D numpy array or a polars DataFrame is taken as several segment columns.

    ``n`` is the number of rows of the array named ``against``, for the length check.
    """
    if hasattr(segments, "to_pandas") and not isinstance(segments, (pd.DataFrame, pd.Series)):
        segments = cast(Any, segments).to_pandas()  # polars (a DataFrame or a Series)
    if isinstance(segments, np.ndarray) and segments.ndim == 2:  # one column per segment key
        segments = pd.DataFrame(segments, columns=[f"column {k}" for k in range(segments.shape[1])])
    if isinstance(segments, Segments):
        seg = segments
    elif isinstance(segments, pd.DataFrame):
        seg = segment_keys(segments, [str(c) for c in segments.columns])
    else:
        name = segments.name if isinstance(segments, pd.Series) and segments.name else "segment"
        arr = np.asarray(segments)
        if arr.ndim != 1:
            raise InputError(f"segments must be one label per row; got shape {arr.shape}.")
        seg = segment_keys(pd.DataFrame({str(name): arr}), [str(name)])
    check_consistent_length((against, n), ("segments", seg.codes.size))
    return seg
