"""The data behind an evaluation: counts per segment (the paper's Table 1) and data warnings.

Warnings name the segments and the numbers: prevalence that differs across segments (the
Discussion's "unbalance between negative samples from a subset and positive samples from
another one"), segments with too few positives for a stable AUC, and patients found in several
segments (their images are not independent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2_contingency

from segeval.segments import GLOBAL, Segments, as_segments
from segeval.validation import InputError, check_labels

MIN_POSITIVES = 30
MAX_PREVALENCE_RATIO = 3.0


@dataclass(frozen=True)
class DataAudit:
    """``table``: one row per segment plus the whole set; ``warnings``: one sentence each."""

    table: pd.DataFrame
    warnings: tuple[str, ...]


def audit_data(
    labels: ArrayLike,
    segments: Segments | ArrayLike,
    *,
    patients: ArrayLike | None = None,
    min_positives: int = MIN_POSITIVES,
    max_prevalence_ratio: float = MAX_PREVALENCE_RATIO,
) -> DataAudit:
    """Per segment: images, benign, malignant, prevalence (and patients), with data warnings.

    Examples
    --------
    >>> a = audit_data([0, 1, 0, 0, 0, 1], ["A", "A", "B", "B", "B", "B"], min_positives=1)
    >>> a.table[["segment", "benign", "malignant"]].values.tolist()
    [['A', 1, 1], ['B', 3, 1], ['__global__', 4, 2]]
    """
    y = check_labels(labels, "labels")
    seg = as_segments(segments, y.size, "labels")
    counts = np.bincount(seg.codes * 2 + y, minlength=2 * len(seg)).reshape(-1, 2)
    audit = audit_counts(
        seg.names, counts, min_positives=min_positives, max_prevalence_ratio=max_prevalence_ratio
    )
    table, notes = audit.table, list(audit.warnings)
    if patients is not None:
        pid = np.asarray(patients)
        if pid.size != y.size:
            raise InputError(f"patients has {pid.size} entries for {y.size} labels.")
        frame = pd.DataFrame({"patient": pid, "segment": seg.codes})
        table["patients"] = [
            *frame.groupby("segment")["patient"].nunique().reindex(range(len(seg))).tolist(),
            int(frame["patient"].nunique()),
        ]
        notes += _shared_patients_warning(frame, seg)
    return DataAudit(table=table, warnings=tuple(notes))


def audit_counts(
    names: Sequence[str],
    counts: ArrayLike,
    *,
    min_positives: int = MIN_POSITIVES,
    max_prevalence_ratio: float = MAX_PREVALENCE_RATIO,
) -> DataAudit:
    """:func:`audit_data` from the counts alone: ``counts[k]`` = (benign, malignant) images of
    segment ``names[k]`` (the whole set is their sum). For counts gathered elsewhere (Dask)."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 2)
    total: NDArray[np.int64] = counts.sum(axis=0)
    table = pd.DataFrame(
        {
            "segment": [*names, GLOBAL],
            "n": [*counts.sum(axis=1).tolist(), int(total.sum())],
            "benign": [*counts[:, 0].tolist(), int(total[0])],
            "malignant": [*counts[:, 1].tolist(), int(total[1])],
        }
    )
    table["prevalence"] = table["malignant"] / table["n"]
    notes = [*_prevalence_warning(table.iloc[:-1], counts, max_prevalence_ratio)]
    notes += _few_positives_warning(table.iloc[:-1], min_positives)
    return DataAudit(table=table, warnings=tuple(notes))


def _pct(p: float) -> str:
    return f"{100 * p:.1f}%"


def _prevalence_warning(table: pd.DataFrame, counts: np.ndarray, max_ratio: float) -> list[str]:
    if len(table) < 2:
        return []
    prevalence = table.prevalence.to_numpy()
    hi, lo = table.iloc[int(prevalence.argmax())], table.iloc[int(prevalence.argmin())]
    if lo.prevalence > 0 and hi.prevalence / lo.prevalence < max_ratio:
        return []
    usable = counts[(counts > 0).any(axis=1)]
    p = chi2_contingency(usable).pvalue if (usable.sum(axis=0) > 0).all() else float("nan")
    ratio = (
        f"no malignant image in {lo.segment}"
        if lo.prevalence == 0
        else f"{hi.prevalence / lo.prevalence:.1f} times as high"
    )
    return [
        f"Prevalence differs across segments: {_pct(hi.prevalence)} in {hi.segment} against "
        f"{_pct(lo.prevalence)} in {lo.segment} ({ratio}; chi-square p = {p:.2g}). A model can "
        f"learn to tell these segments apart instead of the disease, and its global metrics "
        f"can then look better than any local one."
    ]


def _few_positives_warning(table: pd.DataFrame, min_positives: int) -> list[str]:
    few = table[table.malignant < min_positives]
    if few.empty:
        return []
    listed = ", ".join(f"{r.segment} ({r.malignant})" for r in few.itertuples())
    return [
        f"{len(few)} segment(s) have fewer than {min_positives} positives, too few for a stable "
        f"AUC: {listed}."
    ]


def _shared_patients_warning(frame: pd.DataFrame, seg: Segments) -> list[str]:
    per_patient = frame.groupby("patient")["segment"].nunique()
    shared = per_patient[per_patient > 1]
    if shared.empty:
        return []
    example = shared.index[0]
    where = sorted(frame.loc[frame.patient == example, "segment"].unique())
    names = " and ".join(seg.names[k] for k in where[:3])
    return [
        f"{len(shared)} patient(s) appear in more than one segment (e.g. {example!s} in "
        f"{names}); their images are not independent across segments."
    ]
