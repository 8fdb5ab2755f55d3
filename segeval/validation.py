"""Input checks shared by every public function.

Each ``_check_*`` helper validates once at the boundary and returns clean numpy arrays, so the
algorithms below it never re-check. Messages name the argument, what was expected and what was
received (scikit-learn style).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "InputError",
    "SeedLike",
    "UndefinedMetricWarning",
    "as_seed_sequence",
    "check_consistent_length",
    "check_labels",
    "check_level",
    "check_positive_int",
    "check_sample_weight",
    "check_scores",
    "describe_values",
    "one_class_reason",
    "readable_repr",
    "warn_undefined",
]

SeedLike = int | np.random.Generator | np.random.SeedSequence | None


class InputError(ValueError):
    """Wrong input (an argument, a file, a column, a value), described in one sentence.

    A ValueError, as scikit-learn raises for bad arguments; the command lines print its message
    and exit with code 2. Anything else that escapes is a bug and keeps its traceback.
    """


class UndefinedMetricWarning(UserWarning):
    """A statistic is undefined on the given data (for example one class only); NaN is returned."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside segeval.

    For the function that calls this one and then ``warnings.warn`` itself: level 1 is that
    function, each frame above adds one. A warning then names the user's line, however deep in
    segeval it was raised (Python 3.11 has no ``skip_file_prefixes``). When every frame is
    segeval's (its command line), the outermost one.
    """
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE_DIR
    ):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the caller of segeval, not at segeval's own line."""
    warnings.warn(message, category, stacklevel=caller_stacklevel())


def warn_undefined(reason: str) -> float:
    """Warn that a statistic is undefined and return NaN, the value such statistics take."""
    warnings.warn(reason, UndefinedMetricWarning, stacklevel=caller_stacklevel())
    return float("nan")


def _as_1d(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be one-dimensional; got an array of shape {arr.shape}.")
    if arr.size == 0:
        raise InputError(f"{name} is empty; at least one sample is needed.")
    return arr


def describe_values(values: Sequence[Any], limit: int = 5) -> str:
    """The first few values, repr'd as Python scalars: ``2, 'x', nan, ...``."""
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


def check_labels(y_true: ArrayLike, name: str = "y_true") -> NDArray[np.int8]:
    """Return ``y_true`` as an int8 array of 0/1, or raise naming the offending values."""
    arr = _as_1d(name, y_true)
    if arr.dtype.kind == "b":
        return arr.astype(np.int8)
    if arr.dtype.kind not in "iuf":
        bad = [v for v in dict.fromkeys(arr.tolist()) if v not in (0, 1)]
        raise InputError(f"{name} must contain only 0 and 1; got {describe_values(bad)}.")
    invalid = ~np.isin(arr, (0, 1))
    if invalid.any():
        bad_values = np.unique(arr[invalid])
        raise InputError(
            f"{name} must contain only 0 and 1; got {describe_values(list(bad_values))}."
        )
    return arr.astype(np.int8)


def check_scores(
    y_score: ArrayLike, name: str = "y_score", *, probability: bool = False
) -> NDArray[np.float64]:
    """Return finite float64 scores; with ``probability=True`` they must also lie in [0, 1]."""
    arr = _as_1d(name, y_score)
    if arr.dtype.kind not in "iufb":
        raise InputError(f"{name} must be numeric; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        where = np.flatnonzero(~finite)
        raise InputError(
            f"{name} must be finite; got {describe_values(list(arr[where]))} "
            f"at {where.size} position(s), first at index {where[0]}."
        )
    if probability:
        outside = (arr < 0) | (arr > 1)
        if outside.any():
            where = np.flatnonzero(outside)
            raise InputError(
                f"{name} must be probabilities in [0, 1]; got {describe_values(list(arr[where]))} "
                f"at {where.size} position(s), first at index {where[0]}."
            )
    return arr


def check_sample_weight(sample_weight: ArrayLike | None, n: int) -> NDArray[np.float64] | None:
    """Return non-negative finite float64 weights of length ``n`` (or None)."""
    if sample_weight is None:
        return None
    w = _as_1d("sample_weight", sample_weight).astype(np.float64)
    check_consistent_length(("y_true", n), ("sample_weight", w.size))
    if not np.isfinite(w).all() or (w < 0).any():
        raise InputError("sample_weight must be finite and non-negative.")
    return w


def check_consistent_length(*named: tuple[str, int]) -> None:
    """Raise if the named lengths differ, listing every length."""
    lengths = {n for _, n in named}
    if len(lengths) > 1:
        detail = ", ".join(f"{name} has {n}" for name, n in named)
        raise InputError(f"Inputs must have the same length; {detail}.")


def check_level(ci: float, name: str = "ci") -> float:
    """Confidence level strictly between 0 and 1."""
    if not isinstance(ci, (int, float, np.floating)) or not 0 < float(ci) < 1:
        raise InputError(f"{name} must be a confidence level strictly between 0 and 1; got {ci!r}.")
    return float(ci)


def check_positive_int(value: Any, name: str) -> int:
    """An integer >= 1 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)


def as_seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """Convert ``seed`` once into a SeedSequence from which every random stream is spawned.

    A Generator is advanced by one draw, so passing the same Generator twice gives two different
    (but reproducible) streams, as numpy users expect.
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=4).tolist())
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        if seed is not None and seed < 0:
            raise InputError(f"seed must be a non-negative integer; got {seed!r}.")
        return np.random.SeedSequence(None if seed is None else int(seed))
    raise InputError(
        f"seed must be an int, a numpy Generator, a SeedSequence or None; got {seed!r}."
    )


def one_class_reason(
    y: NDArray[np.int8], what: str, weights: NDArray[Any] | None = None
) -> str | None:
    """Why ``what`` is undefined on labels ``y`` (a class absent or of zero weight), else None."""
    w_pos = float(y.sum()) if weights is None else float(weights[y == 1].sum())
    w_neg = float(y.size - y.sum()) if weights is None else float(weights[y == 0].sum())
    if w_pos > 0 and w_neg > 0:
        return None
    if w_pos == 0 and w_neg == 0:
        return f"The total sample weight is zero. {what} is not defined in that case."
    present = "positives (label 1)" if w_pos > 0 else "negatives (label 0)"
    return f"Only {present} present in y_true. {what} is not defined in that case."


def readable_repr(obj: Any) -> str:
    """``Name(field=value, ...)`` with floats as plain numbers, one field a line when long."""

    def show(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return f"{float(value):.6g}"
        if isinstance(value, np.generic):
            return repr(value.item())
        if hasattr(value, "shape") and hasattr(value, "columns"):  # a DataFrame
            return f"<DataFrame {value.shape[0]} rows x {value.shape[1]} columns>"
        if isinstance(value, np.ndarray):
            return f"<array shape {value.shape}>"
        if isinstance(value, (dict, tuple, list)) and len(value) > 12:
            return f"<{type(value).__name__} of {len(value)} items>"
        return repr(value)

    parts = [f"{f.name}={show(getattr(obj, f.name))}" for f in fields(obj) if f.repr]
    one_line = f"{type(obj).__name__}({', '.join(parts)})"
    if len(one_line) <= 88:
        return one_line
    body = "".join(f"    {p.replace(chr(10), chr(10) + '    ')},\n" for p in parts)
    return f"{type(obj).__name__}(\n{body})"
