"""``segeval.evaluate``: a predictions table in, an :class:`Evaluation` of tidy frames out.

This is what ``segeval report`` runs (read the files, :func:`evaluate`, :meth:`Evaluation.write`)
and what a notebook calls. Every number comes from :func:`segeval.engine.evaluate_part`, one
shared bootstrap per part (the whole set, each segment).
"""

from __future__ import annotations

import datetime
import html
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segeval import frames
from segeval.audit import audit_data
from segeval.io import (
    check_cluster_column,
    check_columns,
    check_predictions,
    file_record,
    read_metrics_log,
    read_table,
    runs_as_models,
    to_jsonable,
)
from segeval.leakage import leakage_frames, leakage_over_runs
from segeval.metrics import DEFAULT_THRESHOLDS, check_thresholds
from segeval.resampling import BootstrapOptions, DrawCache, Resample
from segeval.runs import compare_recipes
from segeval.scorecard import recipe_scorecard, scorecard
from segeval.segments import GLOBAL, segment_keys, with_global
from segeval.table import CI_COLUMNS, TABLE_COLUMNS
from segeval.validation import InputError, SeedLike, readable_repr


@dataclass(frozen=True, repr=False)
class Evaluation:
    """Every number of a report, as tidy DataFrames (one row per model x segment x ...).

    Attributes
    ----------
    models, baselines, segments
        The evaluated models (each run of a model with several runs is one), the baseline per
        segment, the segments (``__global__`` first).
    runs : dict
        Each model of the predictions -> its evaluated runs (``("m",)`` for a model of one run,
        ``("m [run 0]", "m [run 1]", ...)`` with a ``run`` column).
    data : DataFrame
        Per-segment counts: images, benign, malignant, prevalence, patients.
    data_warnings : tuple of str
        Data warnings (prevalence differing across segments, few positives, shared patients).
    metrics : DataFrame
        WLL and AUC with CIs, per model and segment (``__global__`` is the whole set).
    comparisons : DataFrame
        ΔAUC against the baseline per model and segment, with the paper's p-value and verdict,
        the bootstrap and DeLong p-values, and Holm's correction over the whole family.
    op_points, op_spread : DataFrame
        Operating points per model, segment and threshold; their spread across segments.
    diagnostics : DataFrame
        Global-vs-local flags (see :func:`segeval.diagnostics.global_vs_local`).
    roc, score_hist, training : DataFrame
        What the figures draw: ROC curves, score histograms, validation curves of runs.
    scorecard : DataFrame
        One row per model, read off the frames above: the report's first screen (see
        :func:`segeval.scorecard.scorecard`). With a ``run`` column, one row per model over its
        runs instead (:func:`segeval.scorecard.recipe_scorecard`).
    leakage, leakage_summary : DataFrame
        Segment leakage (:func:`segeval.segment_leakage`) of every model: how well its score
        tells each segment from the others among images of one label; the summary keeps the
        segment farthest from 0.5 per model and label. Column ``on``: ``"evaluated set"``, or
        ``"validation"`` for the runs' validation predictions.
    leakage_runs : DataFrame
        With a ``run`` column: the leakage summary of each model over its runs
        (:func:`segeval.leakage.leakage_over_runs`).
    recipe_comparisons, run_deltas : DataFrame
        Only for predictions with a ``run`` column (several training seeds of a model): each
        model against the baseline over images *and* seeds
        (:func:`segeval.bootstrap_delta_auc_runs`), with Holm; and each run's ΔAUC against the
        mean AUC of the baseline's runs. Each run is also evaluated as a model of its own,
        named ``"model [run r]"``, in the other tables (compared with the baseline's first run).
    settings, provenance : dict
        The options of the run; segeval's version, the date, the command line and the input
        files (path, sha256, rows) behind the numbers.
    """

    models: tuple[str, ...]
    baselines: dict[str, str]  # segment -> baseline model (GLOBAL: the whole set)
    runs: dict[str, tuple[str, ...]]  # model -> its runs as evaluated models (itself: one run)
    segments: tuple[str, ...]  # GLOBAL first
    data: pd.DataFrame
    data_warnings: tuple[str, ...]
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    diagnostics: pd.DataFrame
    op_points: pd.DataFrame
    op_spread: pd.DataFrame
    roc: pd.DataFrame
    score_hist: pd.DataFrame
    training: pd.DataFrame
    leakage: pd.DataFrame = field(default_factory=pd.DataFrame)
    leakage_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    leakage_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    recipe_comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    run_deltas: pd.DataFrame = field(default_factory=pd.DataFrame)
    scorecard: pd.DataFrame = field(default_factory=pd.DataFrame)
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready: exactly the content of ``report.json``."""
        out: dict[str, Any] = to_jsonable(
            {
                "models": list(self.models),
                "baselines": self.baselines,
                "runs": {m: list(r) for m, r in self.runs.items()},
                "segments": list(self.segments),
                "provenance": self.provenance,
                "settings": self.settings,
                "scorecard": self.scorecard,
                "data": {"table": self.data, "warnings": list(self.data_warnings)},
                "diagnostics": self.diagnostics,
                "metrics": self.metrics,
                "comparisons": self.comparisons,
                "op_points": self.op_points,
                "op_spread": self.op_spread,
                "roc": self.roc,
                "score_hist": self.score_hist,
                "training": self.training,
                "leakage": self.leakage,
                "leakage_summary": self.leakage_summary,
                "leakage_runs": self.leakage_runs,
                "recipe_comparisons": self.recipe_comparisons,
                "run_deltas": self.run_deltas,
            }
        )
        return out

    def write(self, path: str | Path) -> list[Path]:
        """Write the report files exactly as ``segeval report --out path`` does.

        ``path`` (HTML), and beside it ``<stem>.json`` and ``<stem>_<table>.csv``. The set is
        written to temporary files first and then moved into place, so a failure leaves any
        older set whole. Returns the paths written.
        """
        # The report layer (jinja2, matplotlib) sits above this one: imported when used.
        from segeval.report import write_report

        return write_report(self, path)

    def __repr__(self) -> str:
        return readable_repr(self)

    def _repr_html_(self) -> str:
        """A short summary for notebooks: the scorecard (the report's first screen), then the
        warnings."""
        card = self.scorecard
        runs = "n_runs" in card.columns
        shown = pd.DataFrame(
            {
                "model": card.model,
                **({"runs": card.n_runs} if runs else {}),
                "AUC": [_number(v) for v in card.auc],
                "AUC range over runs" if runs else "AUC CI": [
                    _interval(lo, hi)
                    for lo, hi in (
                        zip(card.auc_runs_min, card.auc_runs_max, strict=True)
                        if runs
                        else zip(card.auc_ci_low, card.auc_ci_high, strict=True)
                    )
                ],
                "ΔAUC": [_number(v, "+.4f") for v in card.delta_auc],
                "ΔAUC CI": [
                    _interval(lo, hi)
                    for lo, hi in zip(card.delta_ci_low, card.delta_ci_high, strict=True)
                ],
                "verdict (Holm)": card.verdict_holm.fillna(""),
                "segments better / worse": [
                    "" if pd.isna(b) else f"{b} / {w} of {n}"
                    for b, w, n in zip(
                        card.n_segments_better,
                        card.n_segments_worse,
                        card.n_segments_compared,
                        strict=True,
                    )
                ],
            }
        )
        parts = [
            f"<p><b>segeval Evaluation</b>: {len(card)} model(s)"
            + (f" ({len(self.models)} runs)" if runs else "")
            + f", {len(self.segments) - 1} segment(s), n_boot={self.settings.get('n_boot')}; "
            "ΔAUC against the baseline on the whole set</p>",
            shown.to_html(index=False),
        ]
        notes = [*self.data_warnings, *self.diagnostics.get("message", pd.Series()).tolist()]
        if notes:
            items = "".join(f"<li>{html.escape(str(n))}</li>" for n in notes)
            parts.append(f"<ul>{items}</ul>")
        return "\n".join(parts)


def _number(value: Any, spec: str = ".4f") -> str:
    return "" if value is None or pd.isna(value) else format(float(value), spec)


def _interval(low: Any, high: Any) -> str:
    return "" if low is None or pd.isna(low) else f"({float(low):.4f}, {float(high):.4f})"


def evaluate(
    predictions: Any,
    *,
    segment_by: str | Sequence[str] | None,
    baseline: frames.BaselineLike = None,
    cluster: str | None = None,
    n_boot: int = 2000,
    seed: SeedLike = 0,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ci: float = 0.95,
    resample: Resample = "rows",
    runs: Sequence[str | Path] = (),
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate every model of a predictions table globally and per segment.

    Parameters
    ----------
    predictions : DataFrame
        Long format, one row per (image, model): ``image_id``, ``model``, ``label``, ``score``,
        optional ``patient_id`` and segment columns. pandas, or any frame with ``to_pandas()``.
    segment_by : str or list of str or None
        Segment columns, e.g. ``"source,manufacturer"`` or ``"age:50,60,70"`` (binned).
    baseline : str, mapping or list of str, optional
        The model the others are compared to: ``"model"`` everywhere, ``"(S1, Ma)=model"`` for
        one segment, a list of both forms, or a mapping segment -> model.
    cluster : str, optional
        Column whose values are resampled whole (e.g. ``patient_id``).
    n_boot, seed, ci : bootstrap options
        2000 resamples (the paper); the same seed gives bit-identical numbers.
    thresholds : list of float in [0, 1]
        Thresholds of the operating points.
    resample : {"rows", "stratified", "cluster"}
        Resampling scheme; ``cluster=`` implies ``"cluster"``.
    runs : list of paths
        Training run folders: their ``metrics.jsonl`` gives the validation curves, and their
        ``preds/val.parquet`` (written by ``segtrain fit``) the segment leakage on validation
        (rows ``on == "validation"``, named as the run folder).
    progress : callable, optional
        ``progress(done, total)`` as resamples complete.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> from segeval.synthetic import make_predictions
    >>> ev = evaluate(make_predictions(scale=0.1), segment_by="source", n_boot=20,
    ...               baseline="single_segment")
    >>> ev.models
    ('bal_labels', 'periodic', 'single_segment')
    >>> ev.comparisons[["model", "segment"]].head(2).values.tolist()
    [['bal_labels', '__global__'], ['periodic', '__global__']]
    """
    preds = check_predictions(predictions)
    columns = _check_segment_by(preds, segment_by)
    t = _check_thresholds(thresholds)
    if cluster:
        check_cluster_column(preds, cluster)
        resample = "cluster"
    elif resample == "cluster":
        raise InputError('resample="cluster" needs cluster=, the column to resample whole.')
    options = BootstrapOptions.make(
        n_boot=n_boot, ci=ci, resample=resample, seed=seed, n_jobs=n_jobs
    )
    preds, recipes = runs_as_models(preds)
    models, reference, y, scores = _aligned(preds, columns)
    segments = segment_keys(reference, segment_by) if columns and segment_by else None
    first_run = {recipe: runs[0][1] for recipe, runs in recipes.items()}
    default, per_segment = frames.parse_baseline(baseline)
    baselines = frames.baselines(models, segments, default, per_segment, first_run)
    clusters = reference[cluster].to_numpy() if cluster else None
    total = n_boot * (1 + (len(segments) if segments else 0))
    step = None if progress is None else (lambda done: progress(done, total))

    metric_rows, comparison_rows, spreads = [], [], []
    cache = DrawCache()
    for name, idx in with_global(segments, y.size):
        part = frames.part_rows(
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
            cache,
        )
        metric_rows += part[0]
        comparison_rows += part[1]
        spreads += part[2]
    metrics = pd.DataFrame(metric_rows, columns=["model", *TABLE_COLUMNS, *CI_COLUMNS, "note"])
    comparisons = frames.with_holm(pd.DataFrame(comparison_rows, columns=frames.COMPARISON_COLUMNS))
    training = (
        pd.concat([read_metrics_log(r) for r in runs], ignore_index=True)
        if runs
        else pd.DataFrame(columns=["run", "step", "segment", "wll", "auc"])
    )
    by_model = dict(zip(models, scores, strict=True))
    leakage = (
        _concat_pairs(
            leakage_frames(y, by_model, segments, options=options, clusters=clusters),
            *(_validation_leakage(r, segment_by, cluster, options) for r in runs),
        )
        if segments and segment_by
        else (pd.DataFrame(), pd.DataFrame())
    )
    recipe_of = {m: recipe for recipe, runs in recipes.items() for _, m in runs}
    several = any(len(runs) > 1 for runs in recipes.values())
    across = (
        compare_recipes(
            y,
            by_model,
            recipes,
            {part: recipe_of[m] for part, m in baselines.items()},
            with_global(segments, y.size),
            options=options,
            clusters=clusters,
        )
        if several
        else (pd.DataFrame(), pd.DataFrame())
    )
    diagnostics = frames.diagnostics(metrics, training)
    op_spread = pd.concat([s[1] for s in spreads], ignore_index=True) if spreads else pd.DataFrame()
    card = scorecard(models, metrics, comparisons, diagnostics, op_spread, leakage[1])
    recipe_comparisons = frames.with_holm(across[0]) if len(across[0]) else across[0]
    if several:  # the first screen answers per model, over its runs
        card = recipe_scorecard(recipes, card, recipe_comparisons, diagnostics)
    audit = audit_data(
        y, segments if segments else np.full(y.size, GLOBAL), patients=reference.get("patient_id")
    )
    return Evaluation(
        models=models,
        runs={recipe: tuple(m for _, m in pairs) for recipe, pairs in recipes.items()},
        baselines=baselines,
        segments=(GLOBAL, *(segments.names if segments else ())),
        data=audit.table,
        data_warnings=(*audit.warnings, *_run_count_warning(recipes)),
        metrics=metrics,
        comparisons=comparisons,
        diagnostics=diagnostics,
        op_points=pd.concat(
            [frames.global_points(y, scores, models, t)] + [s[0] for s in spreads],
            ignore_index=True,
        ),
        op_spread=op_spread,
        roc=frames.roc_curves(y, scores, models, segments),
        score_hist=frames.score_histograms(y, scores, models, segments),
        training=training,
        leakage=leakage[0],
        leakage_summary=leakage[1],
        leakage_runs=(
            leakage_over_runs(leakage[1], recipes)
            if several and len(leakage[1])
            else pd.DataFrame()
        ),
        recipe_comparisons=recipe_comparisons,
        run_deltas=across[1],
        scorecard=card,
        settings={
            "segment_by": columns,
            "n_boot": options.n_boot,
            "ci": options.ci,
            "resample": options.resample,
            "cluster": cluster,
            "seed": seed if isinstance(seed, int) or seed is None else repr(seed),
            "thresholds": t.tolist(),
        },
        provenance=_provenance(len(preds), runs),
    )


def _validation_leakage(
    run: str | Path,
    segment_by: str | Sequence[str],
    cluster: str | None,
    options: BootstrapOptions,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segment leakage of a training run on its validation set (``RUN/preds/val.parquet``,
    written by ``segtrain fit``), named as the run; nothing when the run has no such file or
    validated on fewer than two segments."""
    path = Path(run) / "preds" / "val.parquet"
    none = (pd.DataFrame(), pd.DataFrame())
    if not path.is_file():
        return none
    val = check_predictions(read_table(path, "validation predictions file"), str(path))
    name = Path(run).resolve().name
    missing = [c for c in frames.segment_columns(segment_by) if c not in val.columns]
    if missing:
        warnings.warn(
            f"No segment leakage on validation for run {name!r}: {str(path)!r} lacks the "
            f"segment column(s) {', '.join(missing)}.",
            UserWarning,
            stacklevel=3,
        )
        return none
    segments = segment_keys(val, segment_by)
    if len(segments.names) < 2:
        return none
    clusters = val[cluster].to_numpy() if cluster and cluster in val.columns else None
    y = val["label"].to_numpy(np.int8)
    scores = {name: val["score"].to_numpy(np.float64)}
    return leakage_frames(y, scores, segments, options=options, clusters=clusters, on="validation")


def _concat_pairs(*pairs: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leakage (table, summary) pairs joined: the tables together, the summaries together."""
    tables = [t for t, _ in pairs if len(t)] or [pairs[0][0]]
    summaries = [s for _, s in pairs if len(s)] or [pairs[0][1]]
    return pd.concat(tables, ignore_index=True), pd.concat(summaries, ignore_index=True)


def _run_count_warning(recipes: dict[str, list[tuple[str, str]]]) -> list[str]:
    """A warning when the models were not all trained the same number of times."""
    counts = {recipe: len(runs) for recipe, runs in recipes.items()}
    if len(set(counts.values())) < 2:
        return []
    listed = ", ".join(f"{recipe} {n}" for recipe, n in counts.items())
    return [
        f"The models come with different numbers of runs ({listed}): check that no run is "
        "missing; the comparisons across seeds use the runs given."
    ]


def _provenance(rows: int, runs: Sequence[str | Path]) -> dict[str, Any]:
    """Version, date and inputs; ``segeval report`` replaces the in-memory table by its files."""
    from segeval import __version__

    return {
        "segeval_version": __version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": None,
        "inputs": [
            {"role": "predictions", "path": "(a table in memory)", "sha256": None, "rows": rows},
            *(file_record(Path(r) / "metrics.jsonl", "training run") for r in runs),
        ],
    }


def _check_segment_by(preds: pd.DataFrame, segment_by: str | Sequence[str] | None) -> list[str]:
    if segment_by is None:
        return []
    if isinstance(segment_by, str) and not segment_by.strip():
        raise InputError("segment_by is empty; give segment column names, or None for none.")
    if not isinstance(segment_by, str) and len(segment_by) == 0:
        raise InputError("segment_by is empty; give segment column names, or None for none.")
    columns = frames.segment_columns(segment_by)
    check_columns(preds, columns, "segment")
    return columns


def _check_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    t = check_thresholds(thresholds)
    outside = t[(t < 0) | (t > 1)]
    if outside.size:
        raise InputError(f"thresholds must lie in [0, 1], as the scores do; got {outside[0]:g}.")
    return t


def _aligned(
    preds: pd.DataFrame, columns: list[str]
) -> tuple[tuple[str, ...], pd.DataFrame, np.ndarray, np.ndarray]:
    """Models, the first model's rows, labels and the scores of all models, in one row order.

    Paired statistics compare the same image, so every model's rows are sorted by image_id; the
    models must agree on each image's label and segment.
    """
    models = tuple(sorted(preds["model"].unique()))
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
        for col in columns:
            mine, ref = per_model[m][col], reference[col]
            differ = ~((mine == ref) | (mine.isna() & ref.isna()))
            if differ.any():
                image = reference.image_id[int(np.flatnonzero(differ.to_numpy())[0])]
                raise InputError(
                    f"Models {models[0]!r} and {m!r} put image {image!r} in different segments "
                    f"(column {col!r}: {ref[differ].iloc[0]!r} and {mine[differ].iloc[0]!r})."
                )
    if y.min() == y.max():
        present = "positives (label 1)" if y[0] == 1 else "negatives (label 0)"
        raise InputError(
            f"The predictions hold only {present}; AUC, WLL and every comparison need both classes."
        )
    scores = np.stack([per_model[m]["score"].to_numpy(np.float64) for m in models])
    return models, reference, y, scores
