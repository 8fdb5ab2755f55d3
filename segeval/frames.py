"""The tidy frames of an :class:`~segeval.evaluation.Evaluation`, built from the engine's parts.

For the whole set and for each segment, :func:`segeval.engine.evaluate_part` runs *one*
bootstrap whose named statistics are every model's WLL and AUC (plus, on the whole set, every
model's operating-point spread); these functions only turn its results into rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from segeval.delong import delong_delta_auc_test
from segeval.diagnostics import global_vs_local
from segeval.engine import METRICS, DeltaAUCResult, PartResult
from segeval.metrics import (
    operating_points,
    roc_curve,
)
from segeval.registry import MetricSpec
from segeval.resampling import BootstrapOptions
from segeval.segments import GLOBAL, Segments, parse_segment_by, with_global
from segeval.significance import holm
from segeval.validation import InputError, one_class_reason

HIST_BINS = 20
ROC_POINTS = 300  # points kept per ROC curve for the figure and report.json

COMPARISON_COLUMNS = [
    "model",
    "baseline",
    "segment",
    "auc_baseline",
    "auc_baseline_ci_low",
    "auc_baseline_ci_high",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "delta_auc",
    "delta_ci_low",
    "delta_ci_high",
    "p_value",
    "p_value_bootstrap",
    "p_value_delong",
    "verdict",
    "n_boot_undefined",
    "note",
]


def diagnostics(
    metrics: pd.DataFrame, training: pd.DataFrame, specs: Sequence[MetricSpec]
) -> pd.DataFrame:
    """Global-vs-local flags on the evaluated set, and on each run's last validation (whose
    log holds WLL and AUC)."""
    frames = [global_vs_local(metrics, specs).assign(on="evaluated set")]
    if len(training):
        last = training[training.step == training.groupby("run").step.transform("max")]
        last = last.rename(columns={"run": "model"})
        frames.append(global_vs_local(last, METRICS).assign(on="validation, last step"))
    table = pd.concat(frames, ignore_index=True)
    on_validation = table.on != "evaluated set"
    table.loc[on_validation, "message"] = "Validation: " + table.loc[on_validation, "message"]
    return table


def segment_columns(segment_by: str | Sequence[str] | None) -> list[str]:
    """The column names behind ``segment_by`` (bins stripped)."""
    return [c.name for c in parse_segment_by(segment_by)] if segment_by else []


BaselineLike = str | Mapping[str, str] | Sequence[str] | None


def parse_baseline(
    baseline: BaselineLike, models: Sequence[str] = ()
) -> tuple[str | None, dict[str, str]]:
    """The forms of ``--baseline``: ``MODEL`` (everywhere) and ``SEGMENT=MODEL`` (one segment).

    Also a mapping segment -> model, or a list of the string forms. A value that is the name of
    one of ``models`` is that model, even with an ``=`` in it (``lr=0.1``).
    """
    if baseline is None:
        return None, {}
    if isinstance(baseline, Mapping):
        for key, value in baseline.items():
            _check_baseline_name(key, "each segment of the baseline mapping")
            _check_baseline_name(value, f"the baseline of segment {key!r}")
        return None, dict(baseline)
    if isinstance(baseline, str):
        values = [baseline]
    elif isinstance(baseline, (Sequence, np.ndarray, pd.Series)) and not isinstance(
        cast(Any, baseline), (bytes, bytearray)
    ):
        values = list(baseline)
        for value in values:
            _check_baseline_name(value, "each baseline in the list")
    else:
        raise InputError(
            f"baseline must be a model name, 'SEGMENT=MODEL', a list of those or a mapping "
            f"segment -> model; got {baseline!r} ({type(baseline).__name__}): give the model's "
            f"name as text, e.g. {str(baseline)!r}."
        )
    default, per_segment = None, {}
    for value in values:
        segment, sep, model = str(value).rpartition("=")
        if str(value) in models:
            segment, sep, model = "", "", str(value)
        if not sep:
            if default is not None:
                raise InputError(f"--baseline MODEL is given twice: {default!r} and {value!r}.")
            default = str(value)
        elif not segment or not model:
            raise InputError(f"--baseline must be MODEL or SEGMENT=MODEL; got {value!r}.")
        else:
            per_segment[segment] = model
    return default, per_segment


def _check_baseline_name(value: Any, what: str) -> None:
    """Model and segment names are text, as the predictions hold them."""
    if not isinstance(value, str):
        raise InputError(
            f"{what[0].upper()}{what[1:]} must be text; got {value!r} "
            f"({type(value).__name__}): give the name as the predictions hold it, e.g. "
            f"{str(value)!r}."
        )


def baselines(
    models: tuple[str, ...],
    segments: Segments | None,
    baseline: str | None,
    per_segment: Mapping[str, str],
    first_run: Mapping[str, str],
) -> dict[str, str]:
    """Segment -> baseline model, checked against the models and segments.

    ``first_run`` maps each model as the predictions name it to the evaluated model that stands
    for it (itself, or its first run when it has several); a run may also be named directly.
    """
    for model in [baseline, *per_segment.values()]:
        if model is not None and model not in first_run and model not in models:
            raise InputError(f"Unknown baseline {model!r}; the models are {', '.join(first_run)}.")
    baseline = first_run.get(baseline, baseline) if baseline else None
    per_segment = {k: first_run.get(v, v) for k, v in per_segment.items()}
    names = (GLOBAL, *(segments.names if segments else ()))
    for segment in per_segment:
        if segment not in names:
            raise InputError(
                f"Unknown segment {segment!r} in --baseline; the segments are "
                f"{', '.join(names[1:]) or '(none: give --segment-by)'}."
            )
    out = {name: baseline for name in names if baseline is not None}
    out.update(per_segment)
    return out


def comparison_rows(
    part: PartResult,
    baseline: str,
    y: np.ndarray,
    scores: np.ndarray,
    models: tuple[str, ...],
    ci: float,
) -> list[dict[str, Any]]:
    """The ΔAUC rows of one part, each with DeLong's p-value beside the bootstrap's."""
    rows = []
    for m, result in part.comparisons.items():
        row = comparison_row(result, m, baseline, str(part.name), part.reason)
        if not part.reason:
            row["p_value_delong"] = delong_delta_auc_test(
                y, scores[models.index(baseline)], scores[models.index(m)], ci=ci
            ).p_value
        rows.append(row)
    return rows


DELTA_COLUMNS = [
    "model",
    "baseline",
    "segment",
    "metric",
    "value_baseline",
    "value",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "p_value",
    "p_value_bootstrap",
    "verdict",
    "n_boot_undefined",
]


def delta_rows(part: PartResult, baseline: str) -> list[tuple[Any, ...]]:
    """Every metric of one part as a paired difference against the baseline (DELTA_COLUMNS)."""
    return [
        (model, baseline, part.name, metric, d.value_a, d.value_b, d.delta, d.ci_low, d.ci_high,
         d.p_value, d.p_value_bootstrap, d.verdict, d.n_boot_undefined)
        for (metric, model), d in part.deltas.items()
    ]  # fmt: skip


def comparison_row(
    result: DeltaAUCResult, model: str, baseline: str, segment: str, note: str | None
) -> dict[str, Any]:
    """One row of the comparisons table from the engine's ΔAUC result."""
    return {
        "model": model,
        "baseline": baseline,
        "segment": segment,
        "auc_baseline": result.auc_a.estimate,
        "auc_baseline_ci_low": result.auc_a.ci_low,
        "auc_baseline_ci_high": result.auc_a.ci_high,
        "auc": result.auc_b.estimate,
        "auc_ci_low": result.auc_b.ci_low,
        "auc_ci_high": result.auc_b.ci_high,
        "delta_auc": result.delta,
        "delta_ci_low": result.ci_low,
        "delta_ci_high": result.ci_high,
        "p_value": result.p_value,
        "p_value_bootstrap": result.p_value_bootstrap,
        "p_value_delong": float("nan"),
        "verdict": result.verdict,
        "n_boot_undefined": result.n_boot_undefined,
        "note": note or "",
    }


def with_holm(table: pd.DataFrame, options: BootstrapOptions) -> pd.DataFrame:
    """Holm over the whole family of comparisons in the report; the verdict re-read with it."""
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=float))
    table["verdict_holm"] = [
        options.verdict(lo, hi, p)
        for lo, hi, p in zip(table.delta_ci_low, table.delta_ci_high, table.p_holm, strict=True)
    ]
    return table


def global_points(
    y: np.ndarray, scores: np.ndarray, models: tuple[str, ...], t: np.ndarray
) -> pd.DataFrame:
    frames = []
    for m, s in zip(models, scores, strict=True):
        op = operating_points(y, s, t).to_frame()
        frames.append(
            op.assign(model=m, segment=GLOBAL, n_pos=int(y.sum()), n_neg=int(y.size - y.sum()))
        )
    return pd.concat(frames, ignore_index=True)


def _thin(n: int, keep: int) -> np.ndarray:
    """Indices of at most ``keep`` points spread evenly over n, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, keep)).round().astype(int))


def _columns(parts: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    """One frame from many small column groups (one DataFrame each would cost ~1 ms apiece)."""
    if not parts:
        return pd.DataFrame(columns=names)
    sizes = [p["_size"] for p in parts]
    data = {
        name: np.concatenate(
            [
                np.broadcast_to(np.asarray(p[name]), (size,))
                for p, size in zip(parts, sizes, strict=True)
            ]
        )
        for name in names
    }
    return pd.DataFrame(data)


def roc_curves(
    y: np.ndarray, scores: np.ndarray, models: tuple[str, ...], segments: Segments | None
) -> pd.DataFrame:
    """ROC curves of every model on the whole set and each segment, thinned to ROC_POINTS."""
    parts = []
    for name, idx in with_global(segments, y.size):
        if one_class_reason(y[idx], "ROC"):
            continue
        for m, s in zip(models, scores, strict=True):
            curve = roc_curve(y[idx], s[idx])
            keep = _thin(curve.fpr.size, ROC_POINTS)
            parts.append(
                {
                    "model": np.array(m, dtype=object),
                    "segment": np.array(name, dtype=object),
                    "fpr": curve.fpr[keep],
                    "tpr": curve.tpr[keep],
                    "_size": keep.size,
                }
            )
    return _columns(parts, ["model", "segment", "fpr", "tpr"])


def score_histograms(
    y: np.ndarray, scores: np.ndarray, models: tuple[str, ...], segments: Segments | None
) -> pd.DataFrame:
    """Score densities per model, part and label on HIST_BINS bins of [0, 1]."""
    edges = np.linspace(0, 1, HIST_BINS + 1)
    parts = []
    for name, idx in with_global(segments, y.size):
        for m, s in zip(models, scores, strict=True):
            for label in (0, 1):
                values = s[idx][y[idx] == label]
                if values.size == 0:
                    continue
                density, _ = np.histogram(values, bins=edges, density=True)
                parts.append(
                    {
                        "model": np.array(m, dtype=object),
                        "segment": np.array(name, dtype=object),
                        "label": label,
                        "bin_left": edges[:-1],
                        "bin_right": edges[1:],
                        "density": density,
                        "n": values.size,
                        "_size": HIST_BINS,
                    }
                )
    names = ["model", "segment", "label", "bin_left", "bin_right", "density", "n"]
    return _columns(parts, names)
