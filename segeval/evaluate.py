"""From a predictions table to every number a report shows (the report context).

This layer only calls the statistics. For the whole set and for each segment it runs *one*
bootstrap whose statistics are every model's WLL and AUC (plus, on the whole set, every model's
operating-point spread): the resamples are drawn once and shared. With the same seed the numbers
are exactly those of :func:`segment_table`, :func:`bootstrap_delta_auc` and
:func:`op_synchronization` called one by one (the tests check it), at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segeval.audit import DataAudit, audit_data
from segeval.delong import delong_delta_auc_test
from segeval.diagnostics import global_vs_local
from segeval.engine import DeltaAUCResult, evaluate_part
from segeval.io import check_columns, read_metrics_log
from segeval.metrics import (
    DEFAULT_THRESHOLDS,
    check_thresholds,
    operating_points,
    roc_curve,
)
from segeval.resampling import BootstrapOptions
from segeval.segments import GLOBAL, Segments, parse_segment_by, segment_keys, with_global
from segeval.significance import holm, verdict
from segeval.table import CI_COLUMNS, TABLE_COLUMNS, table_row
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


@dataclass(frozen=True)
class Evaluation:
    """Everything computed for a report, as tidy tables (one row per model x segment x ...)."""

    models: tuple[str, ...]
    baselines: dict[str, str]  # segment -> baseline model (GLOBAL: the whole set)
    segments: tuple[str, ...]  # GLOBAL first
    data: DataAudit
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    diagnostics: pd.DataFrame
    op_points: pd.DataFrame
    op_spread: pd.DataFrame
    roc: pd.DataFrame
    score_hist: pd.DataFrame
    training: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)


def evaluate_predictions(
    preds: pd.DataFrame,
    *,
    segment_by: str | Sequence[str] | None,
    baseline: str | None = None,
    segment_baselines: Mapping[str, str] | None = None,
    runs: Sequence[str | Path] = (),
    n_boot: int = 2000,
    ci: float = 0.95,
    cluster: str | None = None,
    seed: int = 0,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate every model of ``preds`` globally and per segment.

    Parameters
    ----------
    preds : DataFrame
        The predictions contract (see :func:`segeval.io.read_predictions`).
    segment_by : str or list of str, optional
        Segment columns (see :func:`segeval.segment_keys`).
    baseline : str, optional
        The model the others are compared to, on the whole set and every segment.
    segment_baselines : mapping, optional
        Segment name -> baseline model for that segment (the paper compares on each test DS to
        the model trained on that DS).
    runs : list of paths
        Training run directories whose ``metrics.jsonl`` gives the validation curves.
    n_boot, ci, seed, n_jobs
        Bootstrap options; ``cluster`` names a column (e.g. ``patient_id``) to resample whole.
    progress : callable, optional
        ``progress(done, total)`` as resamples complete, for a progress bar; the total is
        ``n_boot * (1 + number of segments)``.
    """
    t = check_thresholds(thresholds)
    models = tuple(sorted(preds["model"].unique()))
    check_columns(preds, _segment_columns(segment_by), "segment")
    if cluster:
        check_columns(preds, [cluster], "cluster")
    # One row order for all models, so that paired statistics compare the same image.
    per_model = {
        str(m): g.reset_index(drop=True)
        for m, g in preds.sort_values(["model", "image_id"], kind="stable").groupby("model")
    }
    reference = per_model[models[0]]
    y = reference["label"].to_numpy(np.int8)
    for m in models[1:]:
        if not np.array_equal(per_model[m]["label"].to_numpy(np.int8), y):
            raise InputError(
                f"Models {models[0]!r} and {m!r} give different labels to the same image_id."
            )
    segments = segment_keys(reference, segment_by) if segment_by else None
    baselines = _baselines(models, segments, baseline, segment_baselines or {})
    scores = np.stack([per_model[m]["score"].to_numpy(np.float64) for m in models])
    clusters = reference[cluster].to_numpy() if cluster else None
    total = n_boot * (1 + (len(segments) if segments else 0))
    options = BootstrapOptions.make(
        n_boot=n_boot, ci=ci, resample="cluster" if cluster else "rows", seed=seed, n_jobs=n_jobs
    )
    step = None if progress is None else (lambda done: progress(done, total))

    metric_rows, comparison_rows, spreads = [], [], []
    for name, idx in with_global(segments, y.size):
        results = _evaluate_part(
            name,
            y[idx],
            scores[:, idx],
            models,
            baselines.get(name),
            None if clusters is None else clusters[idx],
            segments if name == GLOBAL else None,
            t,
            options,
            step,
        )
        metric_rows += results[0]
        comparison_rows += results[1]
        spreads += results[2]
    metrics = pd.DataFrame(metric_rows, columns=["model", *TABLE_COLUMNS, *CI_COLUMNS, "note"])
    comparisons = _with_holm(pd.DataFrame(comparison_rows, columns=COMPARISON_COLUMNS))
    op_points = pd.concat(
        [_global_points(y, scores, models, t)] + [s[0] for s in spreads], ignore_index=True
    )
    training = (
        pd.concat([read_metrics_log(r) for r in runs], ignore_index=True)
        if runs
        else (pd.DataFrame(columns=["run", "step", "segment", "wll", "auc"]))
    )
    return Evaluation(
        models=models,
        baselines=baselines,
        segments=(GLOBAL, *(segments.names if segments else ())),
        data=audit_data(
            y,
            segments if segments else np.full(y.size, GLOBAL),
            patients=reference.get("patient_id"),
        ),
        metrics=metrics,
        comparisons=comparisons,
        diagnostics=_diagnostics(metrics, training),
        op_points=op_points,
        op_spread=pd.concat([s[1] for s in spreads], ignore_index=True)
        if spreads
        else (pd.DataFrame()),
        roc=_roc_curves(y, scores, models, segments),
        score_hist=_score_histograms(y, scores, models, segments),
        training=training,
        settings={
            "segment_by": list(_segment_columns(segment_by)),
            "n_boot": n_boot,
            "ci": ci,
            "resample": options.resample,
            "cluster": cluster,
            "seed": seed,
            "thresholds": t.tolist(),
        },
    )


def _diagnostics(metrics: pd.DataFrame, training: pd.DataFrame) -> pd.DataFrame:
    """Global-vs-local flags on the evaluated set, and on each run's last validation."""
    frames = [global_vs_local(metrics).assign(on="evaluated set")]
    if len(training):
        last = training[training.step == training.groupby("run").step.transform("max")]
        last = last.rename(columns={"run": "model"})
        frames.append(global_vs_local(last).assign(on="validation, last step"))
    table = pd.concat(frames, ignore_index=True)
    on_validation = table.on != "evaluated set"
    table.loc[on_validation, "message"] = "Validation: " + table.loc[on_validation, "message"]
    return table


def _segment_columns(segment_by: str | Sequence[str] | None) -> list[str]:
    return [c.name for c in parse_segment_by(segment_by)] if segment_by else []


def _baselines(
    models: tuple[str, ...],
    segments: Segments | None,
    baseline: str | None,
    per_segment: Mapping[str, str],
) -> dict[str, str]:
    names = (GLOBAL, *(segments.names if segments else ()))
    for model in [baseline, *per_segment.values()]:
        if model is not None and model not in models:
            raise InputError(f"Unknown baseline {model!r}; the models are {', '.join(models)}.")
    for segment in per_segment:
        if segment not in names[1:]:
            raise InputError(
                f"Unknown segment {segment!r} in --baseline; the segments are "
                f"{', '.join(names[1:]) or '(none: give --segment-by)'}."
            )
    out = {name: baseline for name in names if baseline is not None}
    out.update(per_segment)
    return out


def _evaluate_part(
    name: str,
    y: np.ndarray,
    scores: np.ndarray,
    models: tuple[str, ...],
    baseline: str | None,
    clusters: np.ndarray | None,
    segments: Segments | None,
    thresholds: np.ndarray,
    options: BootstrapOptions,
    progress: Callable[[int], None] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[pd.DataFrame, pd.DataFrame]]]:
    """Metrics, comparisons and (on the whole set) OP spreads of all models on one part."""
    part = evaluate_part(
        y,
        dict(zip(models, scores, strict=True)),
        options=options,
        baseline=baseline,
        segments=segments,
        thresholds=thresholds if segments is not None else None,
        clusters=clusters,
        name=name,
        progress=progress,
    )
    metrics = [{"model": m, **table_row(part, m)} for m in models]
    comparisons = []
    for m, result in part.comparisons.items():
        assert baseline is not None
        row = comparison_row(result, m, baseline, name, part.reason)
        if not part.reason:
            row["p_value_delong"] = delong_delta_auc_test(
                y, scores[models.index(baseline)], scores[models.index(m)], ci=options.ci
            ).p_value
        comparisons.append(row)
    spreads = [
        (part.spreads[m].points.assign(model=m), part.spreads[m].table.assign(model=m))
        for m in models
        if m in part.spreads
    ]
    return metrics, comparisons, spreads


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


def _with_holm(table: pd.DataFrame) -> pd.DataFrame:
    """Holm over the whole family of comparisons in the report; the verdict re-read with it."""
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=float))
    table["verdict_holm"] = [
        verdict(lo, hi, p)
        for lo, hi, p in zip(table.delta_ci_low, table.delta_ci_high, table.p_holm, strict=True)
    ]
    return table


def _global_points(
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


def _roc_curves(
    y: np.ndarray, scores: np.ndarray, models: tuple[str, ...], segments: Segments | None
) -> pd.DataFrame:
    frames = []
    for name, idx in with_global(segments, y.size):
        if one_class_reason(y[idx], "ROC"):
            continue
        for m, s in zip(models, scores, strict=True):
            curve = roc_curve(y[idx], s[idx])
            keep = _thin(curve.fpr.size, ROC_POINTS)
            frames.append(
                pd.DataFrame(
                    {"model": m, "segment": name, "fpr": curve.fpr[keep], "tpr": curve.tpr[keep]}
                )
            )
    return pd.concat(frames, ignore_index=True)


def _score_histograms(
    y: np.ndarray, scores: np.ndarray, models: tuple[str, ...], segments: Segments | None
) -> pd.DataFrame:
    edges = np.linspace(0, 1, HIST_BINS + 1)
    rows = []
    for name, idx in with_global(segments, y.size):
        for m, s in zip(models, scores, strict=True):
            for label in (0, 1):
                values = s[idx][y[idx] == label]
                if values.size == 0:
                    continue
                density, _ = np.histogram(values, bins=edges, density=True)
                rows.append(
                    pd.DataFrame(
                        {
                            "model": m,
                            "segment": name,
                            "label": label,
                            "bin_left": edges[:-1],
                            "bin_right": edges[1:],
                            "density": density,
                            "n": values.size,
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)
