"""From a predictions table to every number a report shows (the report context).

This layer only calls the statistics: per model, the global and local metric table; per model
and segment, the paired comparison to the baseline (bootstrap ΔAUC with the paper's p-value and
verdict, pROC's bootstrap p-value, DeLong's test) with Holm's adjustment over the family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segeval._validation import InputError, SeedLike, one_class_reason
from segeval.bootstrap import Resample, bootstrap_delta_auc
from segeval.delong import delong_delta_auc_test
from segeval.metrics import DEFAULT_THRESHOLDS
from segeval.segments import GLOBAL, Segments, parse_segment_by, segment_keys, with_global
from segeval.significance import UNDEFINED, holm, verdict
from segeval.table import segment_table

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
class BootOptions:
    """The bootstrap options every statistic of a report shares."""

    n_boot: int
    ci: float
    resample: Resample
    clusters: np.ndarray | None
    seed: SeedLike
    n_jobs: int | None

    def kwargs(self, rows: np.ndarray | None = None) -> dict[str, Any]:
        """Keyword arguments for the bootstrap functions, clusters restricted to ``rows``."""
        clusters = self.clusters
        if clusters is not None and rows is not None:
            clusters = clusters[rows]
        return {
            "n_boot": self.n_boot,
            "ci": self.ci,
            "resample": self.resample,
            "clusters": clusters,
            "seed": self.seed,
            "n_jobs": self.n_jobs,
        }


@dataclass(frozen=True)
class Evaluation:
    """Everything computed for a report, as tidy tables.

    ``metrics``: one row per (model, segment) with the columns of :func:`segment_table`.
    ``comparisons``: one row per (model, segment) against the baseline.
    ``settings``: the options that produced them (seed, n_boot, ...).
    """

    models: tuple[str, ...]
    baseline: str | None
    segments: tuple[str, ...]
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)


def evaluate_predictions(
    preds: pd.DataFrame,
    *,
    segment_by: str | Sequence[str] | None,
    baseline: str | None = None,
    n_boot: int = 2000,
    ci: float = 0.95,
    cluster: str | None = None,
    seed: SeedLike = 0,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    n_jobs: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Global and local metrics of every model, and comparisons to ``baseline``.

    ``preds`` follows the predictions contract (see :func:`segeval.io.read_predictions`).
    ``cluster`` names a column (e.g. ``patient_id``) for cluster resampling. ``progress`` is
    called with a short description before each unit of work.
    """
    models = tuple(sorted(preds["model"].unique()))
    if baseline is not None and baseline not in models:
        raise InputError(f"Unknown baseline {baseline!r}; the models are {', '.join(models)}.")
    resample: Resample = "cluster" if cluster else "rows"
    if cluster and cluster not in preds.columns:
        raise InputError(f"The cluster column {cluster!r} is not in the predictions.")
    columns = [c.name for c in parse_segment_by(segment_by)] if segment_by else []
    for col in columns:
        if col not in preds.columns:
            raise InputError(
                f"The segment column {col!r} is not in the predictions; available columns: "
                f"{', '.join(map(str, preds.columns))}."
            )
    # One row order for all models, so that paired statistics compare the same image.
    wide = preds.sort_values(["model", "image_id"], kind="stable")
    per_model = {str(m): g.reset_index(drop=True) for m, g in wide.groupby("model", sort=True)}
    reference = per_model[models[0]]
    segments = segment_keys(reference, segment_by) if segment_by else None
    clusters = reference[cluster].to_numpy() if cluster else None
    y = reference["label"].to_numpy()
    for m in models[1:]:
        if not np.array_equal(per_model[m]["label"].to_numpy(), y):
            raise InputError(
                f"Models {models[0]!r} and {m!r} give different labels to the same image_id."
            )

    boot = BootOptions(n_boot, ci, resample, clusters, seed, n_jobs)
    tables = []
    for m in models:
        if progress:
            progress(f"metrics of {m}")
        t = segment_table(y, per_model[m]["score"].to_numpy(), segments, **boot.kwargs())
        tables.append(t.assign(model=m))
    metrics = pd.concat(tables, ignore_index=True)
    metrics = metrics[["model", *[c for c in metrics.columns if c != "model"]]]

    comparisons = pd.DataFrame()
    if baseline is not None:
        comparisons = _compare(per_model, baseline, y, segments, boot, progress)
    return Evaluation(
        models=models,
        baseline=baseline,
        segments=(GLOBAL, *(segments.names if segments else ())),
        metrics=metrics,
        comparisons=comparisons,
        settings={
            "segment_by": columns,
            "n_boot": n_boot,
            "ci": ci,
            "resample": resample,
            "cluster": cluster,
            "seed": seed if isinstance(seed, int) else None,
            "thresholds": list(thresholds),
        },
    )


def _compare(
    per_model: dict[str, pd.DataFrame],
    baseline: str,
    y: np.ndarray,
    segments: Segments | None,
    boot: BootOptions,
    progress: Callable[[str], None] | None,
) -> pd.DataFrame:
    parts = with_global(segments, y.size)
    base = per_model[baseline]["score"].to_numpy()
    rows: list[dict[str, Any]] = []
    for model, frame in per_model.items():
        if model == baseline:
            continue
        if progress:
            progress(f"{model} against {baseline}")
        score = frame["score"].to_numpy()
        for name, idx in parts:
            reason = one_class_reason(y[idx], "ΔAUC")
            if reason:
                # The metrics table already warned about this segment; say it once, not twice.
                rows.append(
                    {
                        "model": model,
                        "baseline": baseline,
                        "segment": name,
                        "verdict": UNDEFINED,
                        "note": reason,
                    }
                )
                continue
            d = bootstrap_delta_auc(y[idx], base[idx], score[idx], **boot.kwargs(idx))
            dl = delong_delta_auc_test(y[idx], base[idx], score[idx], ci=boot.ci)
            rows.append(
                {
                    "model": model,
                    "baseline": baseline,
                    "segment": name,
                    "auc_baseline": d.auc_a.estimate,
                    "auc_baseline_ci_low": d.auc_a.ci_low,
                    "auc_baseline_ci_high": d.auc_a.ci_high,
                    "auc": d.auc_b.estimate,
                    "auc_ci_low": d.auc_b.ci_low,
                    "auc_ci_high": d.auc_b.ci_high,
                    "delta_auc": d.delta,
                    "delta_ci_low": d.ci_low,
                    "delta_ci_high": d.ci_high,
                    "p_value": d.p_value,
                    "p_value_bootstrap": d.p_value_bootstrap,
                    "p_value_delong": dl.p_value,
                    "verdict": d.verdict,
                    "n_boot_undefined": d.n_boot_undefined,
                    "note": "",
                }
            )
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    # Holm over the whole family of comparisons in this report; the verdict is re-read with it.
    table["p_holm"] = holm(table["p_value"].to_numpy())
    table["verdict_holm"] = [
        verdict(lo, hi, p)
        for lo, hi, p in zip(table.delta_ci_low, table.delta_ci_high, table.p_holm, strict=True)
    ]
    return table
