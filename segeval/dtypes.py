"""The dtypes of the evaluation's frames: a frame keeps its columns and dtypes, rows or none."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

# The dtype pandas gives a column of strings: "str" under pandas 3, object before; a frame's text
# columns are cast to it, so that an empty frame has the dtypes of a full one.
STRING: Any = pd.Series(["text"]).dtype


def typed(table: pd.DataFrame, dtypes: Mapping[str, Any]) -> pd.DataFrame:
    """``table`` with the columns of ``dtypes`` cast to their dtypes: ``float``, ``"Int64"`` /
    ``"boolean"`` (integers, flags with missing values), ``STRING``; the other columns as they are.

    A column of ``dtypes`` that ``table`` lacks is added (empty), so that a table without rows,
    even one without columns, has the columns and dtypes of a full one.
    """
    missing = [c for c in dtypes if c not in table.columns]
    table = table.reindex(columns=[*table.columns, *missing])
    return table.astype(dict(dtypes))
