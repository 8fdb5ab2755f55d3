"""``segeval.evaluate``: a predictions table in, an :class:`Evaluation` of tidy frames out.

This is what ``segeval report`` runs (read the files, :func:`evaluate`, :meth:`Evaluation.write`)
and what a notebook calls. Every number comes from :func:`segeval.engine.evaluate_part`, one
shared bootstrap per part (the whole set, each segment).
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segeval import frames
from segeval.audit import audit_data
from segeval.dtypes import STRING, typed
from segeval.engine import PartResult, Recipes, evaluate_part
from segeval.io import (
    check_cluster_column,
    check_columns,
    check_predictions,
    runs_as_models,
    to_jsonable,
)
from segeval.leakage import RUNS_SUMMARY_COLUMNS, leakage_frames, leakage_over_runs
from segeval.metrics import DEFAULT_THRESHOLDS, check_thresholds
from segeval.registry import AUC, MetricSpec, resolve_metrics
from segeval.resampling import BootstrapOptions, DrawCache, Resample
from segeval.runs import RECIPE_COLUMNS
from segeval.runs import recipe_rows as recipe_rows_of
from segeval.scorecard import recipe_scorecard, scorecard
from segeval.segments import GLOBAL, Segments, segment_keys, with_global
from segeval.table import table_columns, table_row
from segeval.validation import InputError, SeedLike, readable_repr, warn


def _dtypes(columns: Sequence[str], text: Sequence[str], counts: Sequence[str]) -> dict[str, Any]:
    return {c: STRING if c in text else "int64" if c in counts else float for c in columns}


# The frames of models trained several times: these columns and dtypes, rows or none.
RECIPE_DTYPES = _dtypes(
    [*RECIPE_COLUMNS, "p_holm", "verdict_holm"],
    text=("model", "baseline", "segment", "verdict", "verdict_holm"),
    counts=("n_runs", "n_runs_baseline"),
)
LEAKAGE_RUNS_DTYPES = _dtypes(
    RUNS_SUMMARY_COLUMNS,
    text=("model", "on", "label", "segments"),
    counts=("n_runs", "n_runs_significant"),
)
RUN_DELTAS_DTYPES = _dtypes(
    ["model", "run", "segment", "auc", "delta_auc"], text=("model", "run", "segment"), counts=()
)


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
        The evaluated metrics (default WLL and AUC; ``settings["metrics"]``) with CIs, per model
        and segment (``__global__`` is the whole set): a column per metric, ``<metric>_ci_low``
        and ``<metric>_ci_high``.
    comparisons : DataFrame
        ΔAUC against the baseline per model and segment, with the paper's p-value and verdict,
        the bootstrap and DeLong p-values, and Holm's correction over the whole family.
    deltas : DataFrame
        Every evaluated metric as a paired difference against the baseline (model − baseline on
        the same resamples), per model and segment, with CI, the paper's p-value and verdict
        (uncorrected: the ΔAUC family above carries Holm).
    op_points, op_spread : DataFrame
        Operating points per model, segment and threshold; their spread across segments.
    diagnostics : DataFrame
        Global-vs-local flags (see :func:`segeval.diagnostics.global_vs_local`).
    roc, score_hist, training : DataFrame
        What the figures draw: ROC curves, score histograms, validation curves of runs.
    scorecard : DataFrame
        One row per model, read off the frames above: the report's first screen (see
        :func:`segeval.scorecard.scorecard`). With a ``run`` column, one row per model over its
        runs instead (:func:`segeval.scorecard.recipe_scorecard`). Numbers are floats, counts
        Int64 and the segment-bias flags boolean (both with missing values, e.g. on the
        baseline's row), names and verdicts strings (:func:`segeval.scorecard.scorecard_dtypes`).
    leakage, leakage_summary : DataFrame
        Segment leakage (:func:`segeval.segment_leakage`) of every model: how well its score
        tells each segment from the others among images of one label; the summary keeps the
        segment farthest from 0.5 per model and label. Column ``on``: ``"evaluated set"``, or
        ``"validation"`` for the runs' validation predictions.
    leakage_runs : DataFrame
        With a ``run`` column: the leakage summary of each model over its runs
        (:func:`segeval.leakage.leakage_over_runs`). Without one: no rows, the same columns
        and dtypes (``LEAKAGE_RUNS_DTYPES``).
    recipe_comparisons, run_deltas : DataFrame
        Only for predictions with a ``run`` column (several training seeds of a model): each
        model against the baseline over images *and* seeds
        (:func:`segeval.bootstrap_delta_auc_runs`), with Holm (columns ``RECIPE_DTYPES``);
        and each run's ΔAUC against the mean AUC of the baseline's runs
        (``RUN_DELTAS_DTYPES``). Without a ``run`` column: no rows, the same columns and dtypes,
        so that ``ev.recipe_comparisons.query("p_holm < 0.05")`` works either way. Each run is
        also evaluated as a model of its own, named ``"model [run r]"``, in the other tables
        (compared with the baseline's first run).
    discovery : DataFrame
        With ``discover=``: the reported slices of each model (:func:`segeval.discover`), a
        ``model`` column first; the settings of the search in ``settings["discovery"]``.
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
    leakage_runs: pd.DataFrame = field(
        default_factory=lambda: typed(pd.DataFrame(), LEAKAGE_RUNS_DTYPES)
    )
    recipe_comparisons: pd.DataFrame = field(
        default_factory=lambda: typed(pd.DataFrame(), RECIPE_DTYPES)
    )
    run_deltas: pd.DataFrame = field(
        default_factory=lambda: typed(pd.DataFrame(), RUN_DELTAS_DTYPES)
    )
    scorecard: pd.DataFrame = field(default_factory=pd.DataFrame)
    deltas: pd.DataFrame = field(default_factory=pd.DataFrame)
    discovery: pd.DataFrame = field(default_factory=pd.DataFrame)
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
                "deltas": self.deltas,
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
                "discovery": self.discovery,
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
    metrics: str | Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: SeedLike = 0,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ci: float = 0.95,
    resample: Resample = "rows",
    verdict_rule: str = "paper",
    training: pd.DataFrame | None = None,
    validation_predictions: Mapping[str, Any] | None = None,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    discover: str | Sequence[str] | None = None,
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
    metrics : list of str or str, optional
        Metrics of the registry (:mod:`segeval.registry`) by name, e.g. ``["auc",
        "sens@spec=0.9", "ppv"]`` or ``"auc,sens@spec=0.9"``; default ``["wll", "auc"]`` (the
        paper's). ``"ppv"``/``"npv"`` alone: one per threshold. Each is evaluated per segment
        with CIs and as a paired difference against the baseline (frame ``deltas``); ΔAUC
        against the baseline (frame ``comparisons``) is always computed.
    n_boot, seed, ci : bootstrap options
        2000 resamples (the paper); the same seed gives bit-identical numbers.
    thresholds : list of float in [0, 1]
        Thresholds of the operating points (and of ``"ppv"``/``"npv"``).
    resample : {"rows", "stratified", "cluster", "poisson"}
        Resampling scheme; ``cluster=`` implies ``"cluster"`` unless ``"poisson"`` is asked for.
        ``"poisson"``: each image (each cluster with ``cluster=``) weighted by a Poisson(1)
        count that is a function of its id, the resample and the seed, so the numbers do not
        depend on the order of the rows, and a Dask frame gives the same numbers bit for bit
        (:mod:`segeval.distributed`); WLL then sums losses rounded to 2^-24 (error < 3e-8).
    verdict_rule : {"paper", "symmetric"}
        How a CI and p-value read as a verdict (:func:`segeval.verdict`): the paper's (default;
        a lower bound of exactly 0 counts as an increase) or symmetric (a bound of 0 is not
        significant either way).
    training : DataFrame, optional
        Validation curves of training runs: columns ``run, step, segment, wll, auc`` (the
        records of ``RUN/metrics.jsonl``; :func:`segeval.io.read_runs` reads run folders).
    validation_predictions : mapping, optional
        Run name -> that run's predictions on its validation set (``RUN/preds/val.parquet``,
        written by ``segtrain fit``): their segment leakage (rows ``on == "validation"``).
    progress : callable, optional
        ``progress(done, total)`` as resamples complete.
    discover : str or list of str, optional
        Metadata columns whose slices are searched for each model (:func:`segeval.discover`
        with its defaults, on this bootstrap's size, seed and clusters): frame ``discovery``.
        With ``baseline``, each other model is tested against it inside each slice (the paired
        ΔAUC, ``discover(..., baseline=)``) and the baseline is not searched itself.

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

    A Dask DataFrame is evaluated where it lies, on the active Dask client, with
    ``resample="poisson"`` (the only scheme whose counts do not depend on the partitioning):
    its ``metrics``, ``comparisons``, ``deltas``, ``data`` and ``scorecard`` equal this
    function's for ``predictions.compute()`` with ``resample="poisson"``, bit for bit; the
    tables that need every row in one place (operating points, leakage, DeLong) are empty.
    """
    from segeval.distributed import evaluate_dask, is_dask_frame

    if is_dask_frame(predictions):
        if resample not in ("poisson", "rows"):
            raise InputError(f'A Dask DataFrame is resampled with "poisson"; got {resample!r}.')
        if training is not None or validation_predictions is not None:
            raise InputError("With a Dask DataFrame, training and validation are not supported.")
        return evaluate_dask(
            predictions,
            segment_by=segment_by,
            baseline=baseline,
            cluster=cluster,
            metrics=metrics,
            n_boot=n_boot,
            seed=seed,
            ci=ci,
            verdict_rule=verdict_rule,
            progress=progress,
        )
    plan = _check_inputs(
        predictions,
        segment_by=segment_by,
        baseline=baseline,
        cluster=cluster,
        metrics=metrics,
        options=_options(
            n_boot=n_boot,
            ci=ci,
            resample=resample,
            seed=seed,
            n_jobs=n_jobs,
            cluster=cluster,
            verdict_rule=verdict_rule,
        ),
        thresholds=thresholds,
        training=training,
        validation_predictions=validation_predictions,
    )
    evaluation = _assemble(plan, _statistics(plan, progress), seed=seed)
    if discover is None:
        return evaluation
    return _with_discovery(evaluation, plan, discover, seed)


def _with_discovery(
    evaluation: Evaluation, plan: _Plan, columns: str | Sequence[str], seed: SeedLike
) -> Evaluation:
    """The evaluation with the reported slices of every model (``discover=``)."""
    from segeval.discover import discover

    # With a baseline, each other model is searched for slices where it is worse than the
    # baseline (the paired ΔAUC inside the slice), as `segeval discover --baseline` does.
    baseline = plan.baselines.get(GLOBAL)
    tables, settings = [], {}
    for model in plan.models:
        if model == baseline:
            continue
        found = discover(
            plan.preds,
            columns,
            model=model,
            baseline=baseline,
            n_boot=plan.options.n_boot,
            ci=plan.options.ci,
            cluster=plan.cluster,
            seed=seed,
        )
        tables.append(found.reported.assign(model=model))
        settings = {k: v for k, v in found.settings.items() if k != "model"}
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame({"model": []})
    frame = frame[["model", *(c for c in frame.columns if c != "model")]]
    return replace(
        evaluation, discovery=frame, settings=evaluation.settings | {"discovery": settings}
    )


@dataclass(frozen=True)
class _Plan:
    """The inputs of an evaluation, checked once: everything the statistics need."""

    preds: pd.DataFrame
    columns: list[str]
    segment_by: str | Sequence[str] | None
    specs: tuple[MetricSpec, ...]
    thresholds: np.ndarray
    options: BootstrapOptions
    cluster: str | None
    unused_segment_columns: list[str]
    models: tuple[str, ...]
    reference: pd.DataFrame
    y: np.ndarray
    scores: np.ndarray
    segments: Segments | None
    recipes: dict[str, list[tuple[str, str]]]
    baselines: dict[str, str]
    clusters: np.ndarray | None
    training: pd.DataFrame
    validation: dict[str, _Validation]

    @property
    def ids(self) -> np.ndarray:
        """The image id of each row (the units of Poisson resampling)."""
        return self.reference["image_id"].to_numpy()

    @property
    def runs(self) -> dict[str, list[str]]:
        """Each model (recipe) -> its runs as evaluated models."""
        return {recipe: [m for _, m in pairs] for recipe, pairs in self.recipes.items()}

    def recipes_against(self, baseline: str) -> Recipes:
        """The recipes, compared to the recipe of the evaluated model ``baseline``."""
        recipe = next(r for r, pairs in self.recipes.items() if baseline in dict(pairs).values())
        return Recipes(self.runs, recipe)


@dataclass(frozen=True)
class _Validation:
    """One training run's validation predictions, ready for its segment leakage."""

    y: np.ndarray
    score: np.ndarray
    segments: Segments
    clusters: np.ndarray | None
    ids: np.ndarray


def _options(
    *,
    n_boot: int,
    ci: float,
    resample: Resample,
    seed: SeedLike,
    n_jobs: int | None,
    cluster: str | None,
    verdict_rule: str,
) -> BootstrapOptions:
    if cluster and resample != "poisson":  # Poisson weights patients whole when clustered
        resample = "cluster"
    elif resample == "cluster" and not cluster:
        raise InputError('resample="cluster" needs cluster=, the column to resample whole.')
    return BootstrapOptions.make(
        n_boot=n_boot,
        ci=ci,
        resample=resample,
        seed=seed,
        n_jobs=n_jobs,
        verdict_rule=verdict_rule,
    )


def _check_inputs(
    predictions: Any,
    *,
    segment_by: str | Sequence[str] | None,
    baseline: frames.BaselineLike,
    cluster: str | None,
    metrics: str | Sequence[str] | None,
    options: BootstrapOptions,
    thresholds: Sequence[float],
    training: pd.DataFrame | None,
    validation_predictions: Mapping[str, Any] | None,
) -> _Plan:
    """Every input checked and brought into the form the statistics use (first stage)."""
    preds = check_predictions(predictions)
    columns = _check_segment_by(preds, segment_by)
    t = _check_thresholds(thresholds)
    specs = resolve_metrics(metrics, thresholds=t.tolist())
    if AUC not in specs:  # the comparisons, the scorecard and the figures rest on it
        specs = (*specs, AUC)
    if cluster:
        check_cluster_column(preds, cluster)
    unused = _segment_like_columns(preds, cluster) if segment_by is None else []
    preds, recipes = runs_as_models(preds)
    models, reference, y, scores = _aligned(preds, columns, cluster)
    segments = segment_keys(reference, segment_by) if columns and segment_by else None
    first_run = {recipe: runs[0][1] for recipe, runs in recipes.items()}
    default, per_segment = frames.parse_baseline(baseline, [*recipes, *models])
    plan = _Plan(
        preds=preds,
        columns=columns,
        segment_by=segment_by,
        specs=specs,
        thresholds=t,
        options=options,
        cluster=cluster,
        unused_segment_columns=unused,
        models=models,
        reference=reference,
        y=y,
        scores=scores,
        segments=segments,
        recipes=recipes,
        baselines=frames.baselines(models, segments, default, per_segment, first_run),
        clusters=reference[cluster].to_numpy() if cluster else None,
        training=_check_training(training),
        validation=_check_validation(validation_predictions, segment_by, cluster)
        if segments is not None
        else {},
    )
    if unused:  # after every check: bad input is one sentence, not a warning and an error
        warn(_no_segments_warning(unused), UserWarning)
    return plan


@dataclass(frozen=True)
class _Parts:
    """The engine's results (second stage): the whole set first, then each segment; and the
    segment leakage of each run on its validation set."""

    parts: list[PartResult]
    validation: dict[str, PartResult]


def _statistics(plan: _Plan, progress: Callable[[int, int], None] | None) -> _Parts:
    """Every bootstrap of the evaluation: one engine call per part, all on shared draws."""
    n_segments = len(plan.segments.names) if plan.segments else 0
    total = plan.options.n_boot * (1 + n_segments + len(plan.validation))
    step = None if progress is None else (lambda done: progress(done, total))
    several = any(len(runs) > 1 for runs in plan.recipes.values())
    cache = DrawCache()
    parts = []
    for name, idx in with_global(plan.segments, plan.y.size):
        whole = name == GLOBAL
        base = plan.baselines.get(name)
        parts.append(
            evaluate_part(
                plan.y[idx],
                dict(zip(plan.models, plan.scores[:, idx], strict=True)),
                options=plan.options,
                metrics=plan.specs,
                baseline=base,
                segments=plan.segments if whole else None,
                thresholds=plan.thresholds if whole and plan.segments is not None else None,
                leakage=whole and plan.segments is not None,
                recipes=plan.recipes_against(base) if several and base else None,
                clusters=None if plan.clusters is None else plan.clusters[idx],
                ids=plan.ids[idx],
                name=name,
                progress=step,
                cache=cache,
            )
        )
    validation = {
        run: evaluate_part(
            v.y,
            {run: v.score},
            options=plan.options,
            metrics=(),
            segments=v.segments,
            leakage=True,
            clusters=v.clusters,
            ids=v.ids,
            progress=step,
        )
        for run, v in plan.validation.items()
    }
    return _Parts(parts, validation)


def _assemble(plan: _Plan, stats: _Parts, *, seed: SeedLike) -> Evaluation:
    """The tidy frames of the evaluation, read off the engine's parts (third stage)."""
    models, specs, y, scores = plan.models, plan.specs, plan.y, plan.scores
    metric_rows, comparison_rows, delta_rows, spreads = [], [], [], []
    recipe_rows, per_run = [], []
    names = {recipe: [run for run, _ in pairs] for recipe, pairs in plan.recipes.items()}
    for part, (name, idx) in zip(stats.parts, with_global(plan.segments, y.size), strict=True):
        metric_rows += [{"model": m, **table_row(part, m, specs)} for m in models]
        base = plan.baselines.get(name)
        if base is not None:
            comparison_rows += frames.comparison_rows(
                part, base, y[idx], scores[:, idx], models, plan.options.ci
            )
            delta_rows += frames.delta_rows(part, base)
        spreads += [
            (part.spreads[m].points.assign(model=m), part.spreads[m].table.assign(model=m))
            for m in models
            if m in part.spreads
        ]
        if part.runs and base is not None:
            rows, runs = recipe_rows_of(part, plan.recipes_against(base), names)
            recipe_rows += rows
            per_run += runs
    metrics = pd.DataFrame(metric_rows, columns=["model", *table_columns(specs)])
    comparisons = frames.with_holm(
        pd.DataFrame(comparison_rows, columns=frames.COMPARISON_COLUMNS), plan.options
    )
    deltas = pd.DataFrame(delta_rows, columns=frames.DELTA_COLUMNS)
    leakage = (
        _concat_pairs(
            leakage_frames(stats.parts[0]),
            *(leakage_frames(part, on="validation") for part in stats.validation.values()),
        )
        if plan.segments is not None
        else (pd.DataFrame(), pd.DataFrame())
    )
    several = any(len(runs) > 1 for runs in plan.recipes.values())
    diagnostics = frames.diagnostics(metrics, plan.training, specs)
    op_spread = pd.concat([s[1] for s in spreads], ignore_index=True) if spreads else pd.DataFrame()
    card = scorecard(
        models, metrics, comparisons, diagnostics, op_spread, leakage[1], deltas=deltas, specs=specs
    )
    recipe_comparisons = pd.DataFrame(recipe_rows, columns=RECIPE_COLUMNS)
    if len(recipe_comparisons):
        recipe_comparisons = frames.with_holm(recipe_comparisons, plan.options)
    recipe_comparisons = typed(recipe_comparisons, RECIPE_DTYPES)
    if several:  # the first screen answers per model, over its runs
        card = recipe_scorecard(plan.recipes, card, recipe_comparisons, diagnostics)
    segments = plan.segments
    audit = audit_data(
        y,
        segments if segments else np.full(y.size, GLOBAL),
        patients=plan.reference.get("patient_id"),
    )
    options = plan.options
    return Evaluation(
        models=models,
        runs={recipe: tuple(m for _, m in pairs) for recipe, pairs in plan.recipes.items()},
        baselines=plan.baselines,
        segments=(GLOBAL, *(segments.names if segments else ())),
        data=audit.table,
        data_warnings=(
            *(
                [_no_segments_warning(plan.unused_segment_columns)]
                if plan.unused_segment_columns
                else []
            ),
            *audit.warnings,
            *_run_count_warning(plan.recipes),
        ),
        metrics=metrics,
        comparisons=comparisons,
        diagnostics=diagnostics,
        op_points=pd.concat(
            [frames.global_points(y, scores, models, plan.thresholds)] + [s[0] for s in spreads],
            ignore_index=True,
        ),
        op_spread=op_spread,
        roc=frames.roc_curves(y, scores, models, segments),
        score_hist=frames.score_histograms(y, scores, models, segments),
        training=plan.training,
        leakage=leakage[0],
        leakage_summary=leakage[1],
        leakage_runs=typed(
            leakage_over_runs(leakage[1], plan.recipes)
            if several and len(leakage[1])
            else pd.DataFrame(),
            LEAKAGE_RUNS_DTYPES,
        ),
        recipe_comparisons=recipe_comparisons,
        run_deltas=typed(
            pd.DataFrame(per_run, columns=list(RUN_DELTAS_DTYPES)) if several else pd.DataFrame(),
            RUN_DELTAS_DTYPES,
        ),
        scorecard=card,
        deltas=deltas,
        settings={
            "segment_by": plan.columns,
            "unused_segment_columns": plan.unused_segment_columns,
            "metrics": [spec.name for spec in specs],
            "n_boot": options.n_boot,
            "ci": options.ci,
            "resample": options.resample,
            "verdict_rule": options.verdict_rule,
            "cluster": plan.cluster,
            "seed": seed if isinstance(seed, int) or seed is None else repr(seed),
            "thresholds": plan.thresholds.tolist(),
        },
        provenance=_provenance(len(plan.preds)),
    )


def _check_training(training: pd.DataFrame | None) -> pd.DataFrame:
    """The validation curves of training runs (``run, step, segment, wll, auc``), or none."""
    columns = ["run", "step", "segment", "wll", "auc"]
    if training is None or (isinstance(training, pd.DataFrame) and training.empty):
        return pd.DataFrame(columns=columns)
    if not isinstance(training, pd.DataFrame):
        raise InputError(
            f"training must be a DataFrame of validation records; got {type(training).__name__}."
        )
    missing = [c for c in columns if c not in training.columns]
    if missing:
        raise InputError(
            f"training lacks the column(s) {', '.join(missing)}; it needs {', '.join(columns)} "
            "(the records of RUN/metrics.jsonl, read by segeval.io.read_runs)."
        )
    return training


def _check_validation(
    validation: Mapping[str, Any] | None,
    segment_by: str | Sequence[str] | None,
    cluster: str | None,
) -> dict[str, _Validation]:
    """Each run's validation predictions that can show segment leakage (two segments or more,
    the segment columns present; a warning names a run whose file lacks them)."""
    if validation is None or segment_by is None:
        return {}
    if not isinstance(validation, Mapping):
        raise InputError(
            "validation_predictions must map a run name to its validation predictions; got "
            f"{type(validation).__name__}."
        )
    out = {}
    for run, frame in validation.items():
        val = check_predictions(frame, f"validation predictions of run {run!r}")
        missing = [c for c in frames.segment_columns(segment_by) if c not in val.columns]
        if missing:
            warn(
                f"No segment leakage on validation for run {run!r}: its validation predictions "
                f"table lacks the segment column(s) {', '.join(missing)}.",
                UserWarning,
            )
            continue
        segments = segment_keys(val, segment_by)
        if len(segments.names) < 2:
            continue
        clusters = val[cluster].to_numpy() if cluster and cluster in val.columns else None
        y, score = val["label"].to_numpy(np.int8), val["score"].to_numpy(np.float64)
        ids = val["image_id"].to_numpy()
        out[str(run)] = _Validation(y, score, segments, clusters, ids)
    return out


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


def _provenance(rows: int) -> dict[str, Any]:
    """Version, date and inputs; ``segeval report`` replaces the in-memory table by its files
    and adds the run folders it read."""
    from segeval import __version__

    return {
        "segeval_version": __version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": None,
        "inputs": [
            {"role": "predictions", "path": "(a table in memory)", "sha256": None, "rows": rows},
        ],
    }


# The predictions contract's own columns; any other text column with few values may be a segment.
CONTRACT_COLUMNS = ("image_id", "model", "run", "label", "score", "patient_id")
MAX_SEGMENT_VALUES = 50


def _segment_like_columns(preds: pd.DataFrame, cluster: str | None) -> list[str]:
    """Columns that look like segments (text with 2 to MAX_SEGMENT_VALUES distinct values, fewer
    than half the images) when none were named: a report without them cannot show segment bias.
    """
    images = preds["image_id"].nunique()
    out = []
    for column in preds.columns:
        if column in CONTRACT_COLUMNS or column == cluster:
            continue
        values = preds[column].dropna()
        if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        if not all(isinstance(v, str) for v in values):  # lists, numbers: not segment names
            continue
        distinct = values.unique()
        if 2 <= len(distinct) <= min(MAX_SEGMENT_VALUES, (images - 1) / 2):
            out.append(str(column))
    return out


def _no_segments_warning(columns: Sequence[str]) -> str:
    listed = ", ".join(columns)
    return (
        f"No segments: the predictions have column(s) {listed} that look like data segments, but "
        "segment_by was not given, so only the whole set is evaluated and segment bias cannot "
        f"be judged; name them with --segment-by {','.join(columns)} (segment_by= in Python)."
    )


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
    preds: pd.DataFrame, columns: list[str], cluster: str | None = None
) -> tuple[tuple[str, ...], pd.DataFrame, np.ndarray, np.ndarray]:
    """Models, the first model's rows, labels and the scores of all models, in one row order.

    Paired statistics compare the same image, so every model's rows are sorted by image_id; the
    models must agree on each image's label, segment and cluster (the resampled unit).
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
        for col in [*columns, *([cluster] if cluster else [])]:
            mine, ref = per_model[m][col], reference[col]
            differ = ~((mine == ref) | (mine.isna() & ref.isna()))
            if differ.any():
                image = reference.image_id[int(np.flatnonzero(differ.to_numpy())[0])]
                what = "clusters" if col == cluster and col not in columns else "segments"
                raise InputError(
                    f"Models {models[0]!r} and {m!r} put image {image!r} in different {what} "
                    f"(column {col!r}: {ref[differ].iloc[0]!r} and {mine[differ].iloc[0]!r})."
                )
    if y.min() == y.max():
        present = "positives (label 1)" if y[0] == 1 else "negatives (label 0)"
        raise InputError(
            f"The predictions hold only {present}; AUC, WLL and every comparison need both classes."
        )
    scores = np.stack([per_model[m]["score"].to_numpy(np.float64) for m in models])
    return models, reference, y, scores
