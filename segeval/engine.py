"""The evaluation engine: every bootstrap number of segeval comes from :func:`evaluate_part`.

A *part* is the whole set or one segment. For any number of models it draws one set of
resamples and evaluates, as named statistics on those resamples:

- each model's metrics, one per :class:`~segeval.registry.MetricSpec` (``(spec.name, model)``),
  with percentile CIs, and their paired differences against a baseline model;
- each model's paired ΔAUC against the baseline, with the paper's p-value and verdict;
- each model's operating-point spread across segments (``("op_spread", model)``);
- each model's segment leakage per label (``("leakage", model, label)``);
- each recipe (a model trained with several seeds) against the baseline's recipe, over images
  and seeds (the per-run AUCs are the runs' ``("auc", run)`` on the same resamples).

Only this module draws resamples (an architecture test checks it). :func:`segeval.bootstrap_auc`,
:func:`segeval.bootstrap_delta_auc`, :func:`segeval.bootstrap_delta_auc_runs`,
:func:`segeval.segment_leakage`, :func:`segeval.segment_table`, :func:`segeval.op_synchronization`
and :func:`segeval.evaluate` are views of this function, so their numbers agree by construction.
Inputs arrive validated; rules shared by all views (the undefined path, the p-values, the
verdict, the resample warnings) live here once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from segeval._kernels import OneVsRestAUC
from segeval.metrics import DEFAULT_EPS
from segeval.op_spread import SpreadStatistic, spread_table
from segeval.registry import AUC, DEFAULT_METRICS, MetricSpec, resolve_metrics, undefined_reason
from segeval.resampling import (
    BootstrapOptions,
    BootstrapResult,
    DrawCache,
    Draws,
    Resampler,
    Statistic,
    bootstrap_distribution,
    child_seeds,
    poisson_seed,
    summarize,
    undefined_result,
)
from segeval.segments import GLOBAL, Segments
from segeval.significance import p_value_from_bootstrap, p_value_from_ci, verdict
from segeval.validation import (
    UndefinedMetricWarning,
    one_class_reason,
    readable_repr,
    warn,
    warn_undefined,
)

METRICS = resolve_metrics(DEFAULT_METRICS)
LABELS = (0, 1)  # segment leakage is measured within each label
# Child key of the run draws: far above any resample index (image draws use keys 0 … n_boot−1).
RUNS_SPAWN_KEY = 2**31


@dataclass(frozen=True, repr=False)
class DeltaAUCResult:
    """Paired comparison ΔAUC = AUC(b) − AUC(a) on the same resamples."""

    auc_a: BootstrapResult
    auc_b: BootstrapResult
    delta: float
    ci_low: float
    ci_high: float
    se: float
    p_value: float
    p_value_bootstrap: float
    verdict: str
    n_boot_used: int
    n_boot_undefined: int
    ci: float
    distribution: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        return readable_repr(self)


@dataclass(frozen=True, repr=False)
class DeltaResult:
    """Paired difference of any metric, metric(b) − metric(a), on the same resamples."""

    metric: str
    value_a: float
    value_b: float
    delta: float
    ci_low: float
    ci_high: float
    se: float
    p_value: float
    p_value_bootstrap: float
    verdict: str
    n_boot_undefined: int

    def __repr__(self) -> str:
        return readable_repr(self)


@dataclass(frozen=True)
class RunsDeltaAUCResult:
    """ΔAUC = mean AUC of b's runs − mean AUC of a's runs, with a CI over images and seeds.

    ``ci_low``/``ci_high`` come from the two-level bootstrap; ``images_ci_low``/``images_ci_high``
    from the images alone (the run means held fixed), to show how much the seeds add.
    ``runs_auc_a``/``runs_auc_b`` are each run's AUC on all images.
    """

    delta: float
    ci_low: float
    ci_high: float
    se: float
    p_value: float
    p_value_bootstrap: float
    verdict: str
    images_ci_low: float
    images_ci_high: float
    runs_auc_a: tuple[float, ...]
    runs_auc_b: tuple[float, ...]
    n_boot_used: int
    n_boot_undefined: int
    ci: float

    def __repr__(self) -> str:
        return (
            f"RunsDeltaAUCResult(delta={self.delta:.4f}, ci=[{self.ci_low:.4f}, "
            f"{self.ci_high:.4f}], p_value={self.p_value:.3g}, verdict={self.verdict!r}, "
            f"runs={len(self.runs_auc_a)} vs {len(self.runs_auc_b)})"
        )


@dataclass(frozen=True, repr=False)
class SpreadResult:
    """One model's operating points per segment and their spread per threshold."""

    points: pd.DataFrame
    table: pd.DataFrame
    excluded: tuple[str, ...]
    reason: str | None

    def __repr__(self) -> str:
        return readable_repr(self)


@dataclass(frozen=True, repr=False)
class LeakagePart:
    """One model's leakage among the images of one label: each segment against the rest.

    ``results`` is empty when fewer than two segments hold images of the label.
    """

    segments: tuple[str, ...]
    sizes: tuple[int, ...]
    results: tuple[BootstrapResult, ...]

    def __repr__(self) -> str:
        return readable_repr(self)


@dataclass(frozen=True)
class Recipes:
    """Models trained several times: recipe -> its runs (evaluated models), and the baseline
    recipe the others are compared to over images and seeds."""

    runs: Mapping[str, Sequence[str]]
    baseline: str


@dataclass(frozen=True, repr=False)
class PartResult:
    """Everything the engine computed on one part; metrics are keyed (metric name, model)."""

    name: str | None
    n: int
    n_pos: int
    reason: str | None
    metrics: dict[tuple[str, str], BootstrapResult]
    comparisons: dict[str, DeltaAUCResult]
    spreads: dict[str, SpreadResult]
    deltas: dict[tuple[str, str], DeltaResult] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    leakage: dict[str, dict[int, LeakagePart]] = field(default_factory=dict)
    runs: dict[str, RunsDeltaAUCResult] = field(default_factory=dict)
    extra: Draws | None = None

    def __repr__(self) -> str:
        return readable_repr(self)


def _prefix(name: str | None) -> str:
    if name == GLOBAL:
        return "Whole set: "
    return f"Segment {name}: " if name else ""


def _listed(words: Sequence[str], conjunction: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def _part_reason(y: NDArray[np.int8], specs: Sequence[MetricSpec], name: str | None) -> str | None:
    """Why the metrics are undefined on a part, in plain words when the part has a name."""
    one = len(specs) == 1
    what = specs[0].label if one else _listed([m.short for m in specs], "or")
    reason = one_class_reason(y, what)
    if not reason or not name:
        return reason
    missing = "malignant images (label 1)" if y.sum() == 0 else "benign images (label 0)"
    where = "The whole set" if name == GLOBAL else f"Segment {name}"
    verb = "is" if one else "are"
    metric = what if one else _listed([m.short for m in specs], "and")
    return f"{where} has no {missing}: its {metric} {verb} undefined."


def undefined_delta(ci: float) -> DeltaAUCResult:
    """A comparison on a part where AUC is undefined (the caller has warned why)."""
    nan = float("nan")
    und = undefined_result(ci)
    return DeltaAUCResult(und, und, nan, nan, nan, nan, nan, nan, verdict(nan, nan, nan), 0, 0, ci)


def undefined_runs(n_runs_a: int, n_runs_b: int, ci: float) -> RunsDeltaAUCResult:
    """A comparison of recipes on a part where AUC is undefined (the caller has warned why)."""
    nan = float("nan")
    undefined = verdict(nan, nan, nan)
    runs_a, runs_b = (nan,) * n_runs_a, (nan,) * n_runs_b
    return RunsDeltaAUCResult(
        nan, nan, nan, nan, nan, nan, undefined, nan, nan, runs_a, runs_b, 0, 0, ci
    )


def _undefined_runs(recipes: Recipes, ci: float) -> dict[str, RunsDeltaAUCResult]:
    base = len(recipes.runs[recipes.baseline])
    return {
        r: undefined_runs(base, len(runs), ci)
        for r, runs in recipes.runs.items()
        if r != recipes.baseline
    }


def evaluate_part(
    y: NDArray[np.int8],
    scores: Mapping[str, NDArray[np.float64]],
    *,
    options: BootstrapOptions | None,
    metrics: Sequence[MetricSpec] = METRICS,
    baseline: str | None = None,
    segments: Segments | None = None,
    thresholds: NDArray[np.float64] | None = None,
    leakage: bool = False,
    recipes: Recipes | None = None,
    extra: Mapping[Hashable, Statistic] | None = None,
    clusters: NDArray[np.generic] | None = None,
    ids: NDArray[np.generic] | None = None,
    eps: float = DEFAULT_EPS,
    name: str | None = None,
    keep: bool = False,
    progress: Callable[[int], None] | None = None,
    cache: DrawCache | None = None,
) -> PartResult:
    """Metrics, comparisons, OP spreads, leakage and recipe comparisons of every model on one
    part, all from one set of resamples.

    ``options=None`` gives point estimates only (no resample). ``segments`` and ``thresholds``
    ask for the OP spread, ``segments`` and ``leakage`` for the segment leakage; ``recipes`` for
    the comparisons over images and seeds; ``extra`` are further named statistics (kernels of
    row weights, see :mod:`segeval._kernels`) drawn on the same resamples, returned raw in
    ``PartResult.extra`` for a caller that summarizes them itself (joint distributions such as
    a maximum over slices come free); ``keep`` keeps the bootstrap distributions in the
    results. Parts of one evaluation share a ``cache`` of draws (same size, same seed: same
    local resamples). ``ids`` are the rows' ids (image ids), the units of ``resample="poisson"``
    unless ``clusters`` are given; under it the kernels sum exactly (``MetricSpec.kernel``).
    """
    specs = tuple(metrics)
    # ΔAUC is the paper's comparison: AUC is drawn whenever models are compared.
    drawn = specs if AUC in specs or (baseline is None and recipes is None) else (*specs, AUC)
    n_pos = int(y.sum())
    reason = _part_reason(y, drawn, name) if drawn else None
    ci = options.ci if options else float("nan")
    if reason:
        warn(reason, UndefinedMetricWarning)
        if progress is not None and options is not None:
            progress(options.n_boot)
        return PartResult(
            name=name,
            n=int(y.size),
            n_pos=n_pos,
            reason=reason,
            metrics={(spec.name, m): undefined_result(ci) for spec in specs for m in scores},
            comparisons={m: undefined_delta(ci) for m in scores if baseline and m != baseline},
            spreads={},
            runs=_undefined_runs(recipes, ci) if recipes else {},
        )
    statistics: dict[Hashable, Statistic] = {}
    exact = options is not None and options.resample == "poisson"
    kernels: dict[Hashable, Any] = {
        (spec.name, m): spec.kernel(y, s, eps, exact=exact)
        for m, s in scores.items()
        for spec in drawn
    }
    statistics.update(kernels)
    spreads = _spread_statistics(y, scores, segments, thresholds, name)
    for m, spread in spreads.items():
        if not spread.reason:
            statistics["op_spread", m] = spread
    leaks = _leakage_statistics(y, scores, segments) if leakage and segments is not None else {}
    statistics.update(leaks)
    statistics.update(extra or {})
    draws = _draw(statistics, y, clusters, ids, options, progress, cache)
    _warn_dropped(draws, specs, scores, name, options)
    values = {key: _summary(draws, key, ci, keep) for key in kernels}
    notes = _notes(values, kernels, specs, scores, y, name)
    return PartResult(
        name=name,
        n=int(y.size),
        n_pos=n_pos,
        reason=None,
        metrics={(spec.name, m): values[spec.name, m] for m in scores for spec in specs},
        comparisons={
            m: compare(draws, baseline, m, options, keep)
            for m in scores
            if baseline is not None and m != baseline
        },
        spreads={m: _spread_result(draws, m, spread, ci) for m, spread in spreads.items()},
        deltas={
            (spec.name, m): _delta(draws, spec.name, baseline, m, options)
            for spec in specs
            for m in scores
            if baseline is not None and m != baseline and options is not None
        },
        notes=notes,
        leakage=_leakage_results(draws, leaks, ci) if leaks else {},
        runs=_runs(draws, recipes, options) if recipes and options else {},
        extra=Draws({k: draws.estimate(k) for k in extra}, {k: draws.of(k) for k in extra})
        if extra
        else None,
    )


def _notes(
    values: Mapping[Hashable, BootstrapResult],
    kernels: Mapping[Hashable, Any],
    specs: Sequence[MetricSpec],
    scores: Mapping[str, NDArray[np.float64]],
    y: NDArray[np.int8],
    name: str | None,
) -> dict[str, str]:
    """Per model, why a metric is undefined on the whole part (warned once each), else empty."""
    notes: dict[str, str] = {}
    for m in scores:
        reasons = []
        for spec in specs:
            if np.isnan(values[spec.name, m].estimate):
                reason = undefined_reason(kernels[spec.name, m], spec, y)
                whose = "" if m == "score" else f"{m}: "  # "score": a single-model call
                warn_undefined(_prefix(name) + whose + reason)
                reasons.append(reason)
        if reasons:
            notes[m] = " ".join(reasons)
    return notes


def _spread_statistics(
    y: NDArray[np.int8],
    scores: Mapping[str, NDArray[np.float64]],
    segments: Segments | None,
    thresholds: NDArray[np.float64] | None,
    name: str | None,
) -> dict[str, SpreadStatistic]:
    if segments is None or thresholds is None:
        return {}
    spreads = {m: SpreadStatistic(y, s, segments, thresholds) for m, s in scores.items()}
    first = next(iter(spreads.values()), None)
    if first is not None and first.excluded:
        warn(
            f"{_prefix(name)}Segments with one class only have no operating point and are left "
            f"out: {', '.join(first.excluded)}.",
            UndefinedMetricWarning,
        )
    if first is not None and first.reason:
        warn_undefined(_prefix(name) + first.reason)
    return spreads


def _draw(
    statistics: dict[Hashable, Statistic],
    y: NDArray[np.int8],
    clusters: NDArray[np.generic] | None,
    ids: NDArray[np.generic] | None,
    options: BootstrapOptions | None,
    progress: Callable[[int], None] | None,
    cache: DrawCache | None,
) -> Draws:
    if not statistics:  # nothing defined to resample
        if progress is not None and options is not None:
            progress(options.n_boot)
        return Draws({}, {})
    if options is None:
        ones = np.ones(y.size)
        estimates = {k: np.atleast_1d(stat(ones, float(y.size))) for k, stat in statistics.items()}
        return Draws(estimates, {k: v[None, :] * np.nan for k, v in estimates.items()})
    return bootstrap_distribution(
        statistics,
        Resampler(y, resample=options.resample, clusters=clusters, ids=ids),
        n_boot=options.n_boot,
        seed=options.seed,
        n_jobs=options.n_jobs,
        progress=progress,
        cache=cache,
    )


def _warn_dropped(
    draws: Draws,
    specs: Sequence[MetricSpec],
    scores: Mapping[str, NDArray[np.float64]],
    name: str | None,
    options: BootstrapOptions | None,
) -> None:
    """One warning per part with the number of resamples excluded for holding one class."""
    if options is None or not specs or not scores:
        return
    first = draws.of((specs[0].name, next(iter(scores))))
    dropped = int(np.isnan(first).sum())
    if dropped:
        warn(
            f"{_prefix(name)}{dropped} of {options.n_boot} resamples hold one class only; "
            f"they are excluded from the intervals.",
            UndefinedMetricWarning,
        )


def _summary(draws: Draws, key: Hashable, ci: float, keep: bool) -> BootstrapResult:
    estimate = float(draws.estimate(key)[0])
    if np.isnan(ci):  # no bootstrap: the estimate alone
        return BootstrapResult(estimate, *(float("nan"),) * 3, 0, 0, ci)
    return summarize(estimate, draws.of(key)[:, 0], ci, keep=keep)


def compare(
    draws: Draws, baseline: str, model: str, options: BootstrapOptions | None, keep: bool = False
) -> DeltaAUCResult:
    """ΔAUC = AUC(model) − AUC(baseline) on the shared resamples, with the paper's p and verdict."""
    if options is None:
        raise ValueError("a comparison needs a bootstrap (n_boot >= 1)")
    ci = options.ci
    base, mine = draws.estimate(("auc", baseline))[0], draws.estimate(("auc", model))[0]
    base_draws, my_draws = draws.of(("auc", baseline))[:, 0], draws.of(("auc", model))[:, 0]
    delta = summarize(mine - base, my_draws - base_draws, ci, keep=keep)
    p = p_value_from_ci(delta.estimate, delta.ci_low, delta.ci_high, level=ci)
    return DeltaAUCResult(
        auc_a=summarize(base, base_draws, ci),
        auc_b=summarize(mine, my_draws, ci),
        delta=delta.estimate,
        ci_low=delta.ci_low,
        ci_high=delta.ci_high,
        se=delta.se,
        p_value=p,
        p_value_bootstrap=p_value_from_bootstrap(delta.estimate, delta.se),
        verdict=verdict(delta.ci_low, delta.ci_high, p, alpha=options.alpha),
        n_boot_used=delta.n_boot_used,
        n_boot_undefined=delta.n_boot_undefined,
        ci=ci,
        distribution=delta.distribution,
    )


def _spread_result(draws: Draws, model: str, spread: SpreadStatistic, ci: float) -> SpreadResult:
    t = spread.thresholds
    key = ("op_spread", model)
    if spread.reason or key not in draws.estimates:
        nan = np.full(t.size, np.nan)
        table = spread_table(t, nan, nan[None, :], ci, warn=False)
    else:
        table = spread_table(t, draws.estimate(key), draws.of(key), ci)
        dropped = int(table.n_boot_undefined.max())
        if dropped:
            whose = "" if model == "score" else f" of {model}"  # "score": a single-model call
            warn(
                f"OP spread{whose}: {dropped} of {len(draws.of(key))} resamples leave a "
                f"segment with one class; they are excluded from its interval.",
                UndefinedMetricWarning,
            )
    return SpreadResult(spread.points(), table, spread.excluded, spread.reason)


def _delta(
    draws: Draws, metric: str, baseline: str, model: str, options: BootstrapOptions
) -> DeltaResult:
    """metric(model) − metric(baseline) on the shared resamples, with the paper's p and verdict."""
    base, mine = draws.estimate((metric, baseline))[0], draws.estimate((metric, model))[0]
    diff = draws.of((metric, model))[:, 0] - draws.of((metric, baseline))[:, 0]
    with warnings.catch_warnings():  # an undefined metric was warned about once, by name
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        delta = summarize(mine - base, diff, options.ci)
    p = p_value_from_ci(delta.estimate, delta.ci_low, delta.ci_high, level=options.ci)
    return DeltaResult(
        metric=metric,
        value_a=float(base),
        value_b=float(mine),
        delta=delta.estimate,
        ci_low=delta.ci_low,
        ci_high=delta.ci_high,
        se=delta.se,
        p_value=p,
        p_value_bootstrap=p_value_from_bootstrap(delta.estimate, delta.se),
        verdict=verdict(delta.ci_low, delta.ci_high, p, alpha=options.alpha),
        n_boot_undefined=delta.n_boot_undefined,
    )


def _leakage_statistics(
    y: NDArray[np.int8], scores: Mapping[str, NDArray[np.float64]], segments: Segments
) -> dict[Hashable, OneVsRestAUC]:
    return {
        ("leakage", m, label): OneVsRestAUC(y, s, segments, label)
        for m, s in scores.items()
        for label in LABELS
    }


def _leakage_results(
    draws: Draws, leaks: Mapping[Hashable, OneVsRestAUC], ci: float
) -> dict[str, dict[int, LeakagePart]]:
    """Each model's segment-vs-rest AUCs per label (none where fewer than two segments hold
    images of the label: :mod:`segeval.leakage` says so)."""
    out: dict[str, dict[int, LeakagePart]] = {}
    for key, stat in leaks.items():
        _, model, label = cast(tuple[str, str, int], key)
        estimates, resampled = draws.estimate(key), draws.of(key)
        results = (
            tuple(
                summarize(est, resampled[:, k], ci, what="Segment leakage")
                for k, est in enumerate(estimates)
            )
            if stat.k >= 2
            else ()
        )
        sizes = tuple(int(n) for n in stat.sizes)
        out.setdefault(model, {})[label] = LeakagePart(stat.names, sizes, results)
    return out


def _runs(
    draws: Draws, recipes: Recipes, options: BootstrapOptions
) -> dict[str, RunsDeltaAUCResult]:
    """Each recipe against the baseline recipe over images and seeds (the two-level bootstrap).

    Each resample of the images is shared by every run (the runs' AUC draws); independently,
    runs are drawn with replacement within each recipe, and the resampled ΔAUC is the mean AUC of
    the drawn runs of b minus that of a. With one run each it is the images-only ΔAUC exactly.
    """
    seq = options.seed
    # Beside the image resamples' children 0 … n_boot−1, never among them; derived from the
    # seed's fixed identity, so the same seed object gives the same run draws every time.
    run_seed = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, RUNS_SPAWN_KEY))
    base_runs = recipes.runs[recipes.baseline]
    aucs_a = np.array([draws.estimate(("auc", m))[0] for m in base_runs])
    auc_a = np.column_stack([draws.of(("auc", m))[:, 0] for m in base_runs])
    out = {}
    for recipe, runs in recipes.runs.items():
        if recipe == recipes.baseline:
            continue
        aucs_b = np.array([draws.estimate(("auc", m))[0] for m in runs])
        auc_b = np.column_stack([draws.of(("auc", m))[:, 0] for m in runs])
        ra, rb = auc_a.shape[1], auc_b.shape[1]
        estimate = float(aucs_b.mean() - aucs_a.mean())
        images_only = auc_b.mean(axis=1) - auc_a.mean(axis=1)
        if ra == 1 and rb == 1:
            two_level = images_only
        else:
            rng = np.random.default_rng(run_seed)
            pick_a = rng.integers(0, ra, (options.n_boot, ra))
            pick_b = rng.integers(0, rb, (options.n_boot, rb))
            rows = np.arange(options.n_boot)[:, np.newaxis]
            two_level = auc_b[rows, pick_b].mean(axis=1) - auc_a[rows, pick_a].mean(axis=1)
        delta = summarize(estimate, two_level, options.ci, what="ΔAUC")
        images = summarize(estimate, images_only, options.ci, what="ΔAUC")
        p = p_value_from_ci(delta.estimate, delta.ci_low, delta.ci_high, level=options.ci)
        out[recipe] = RunsDeltaAUCResult(
            delta=delta.estimate,
            ci_low=delta.ci_low,
            ci_high=delta.ci_high,
            se=delta.se,
            p_value=p,
            p_value_bootstrap=p_value_from_bootstrap(delta.estimate, delta.se),
            verdict=verdict(delta.ci_low, delta.ci_high, p, alpha=options.alpha),
            images_ci_low=images.ci_low,
            images_ci_high=images.ci_high,
            runs_auc_a=tuple(float(v) for v in aucs_a),
            runs_auc_b=tuple(float(v) for v in aucs_b),
            n_boot_used=delta.n_boot_used,
            n_boot_undefined=delta.n_boot_undefined,
            ci=options.ci,
        )
    return out


def resample_indices(
    y: NDArray[np.int8],
    *,
    options: BootstrapOptions,
    clusters: ArrayLike | None = None,
    ids: ArrayLike | None = None,
) -> Iterator[NDArray[np.int64]]:
    """The row indices of each resample the engine draws for a part with labels ``y``, in order
    (to replay a bootstrap, or check a statistic by brute force)."""
    resampler = Resampler(y, resample=options.resample, clusters=clusters, ids=ids)
    if options.resample == "poisson":
        key, rows = poisson_seed(options.seed), np.arange(y.size)
        for b in range(options.n_boot):
            counts = resampler.poisson_block(key, range(b, b + 1))[0]
            yield np.repeat(rows, counts.astype(np.int64))
        return
    for seed in child_seeds(options.seed, options.n_boot):
        yield resampler.indices(resampler.draw(np.random.default_rng(seed)))


def part_from_draws(
    draws: Draws,
    *,
    n: int,
    n_pos: int,
    models: Sequence[str],
    specs: Sequence[MetricSpec],
    baseline: str | None,
    options: BootstrapOptions,
    name: str | None,
) -> PartResult:
    """A part's metrics, ΔAUC and deltas from draws merged elsewhere (:mod:`segeval.distributed`),
    with the same summaries :func:`evaluate_part` applies to its own draws."""
    scores = dict.fromkeys(models)  # _warn_dropped reads the model names only
    _warn_dropped(draws, specs, scores, name, options)  # type: ignore[arg-type]
    return PartResult(
        name=name,
        n=n,
        n_pos=n_pos,
        reason=None,
        metrics={
            (spec.name, m): _summary(draws, (spec.name, m), options.ci, False)
            for m in models
            for spec in specs
        },
        comparisons={
            m: compare(draws, baseline, m, options)
            for m in models
            if baseline is not None and m != baseline
        },
        spreads={},
        deltas={
            (spec.name, m): _delta(draws, spec.name, baseline, m, options)
            for spec in specs
            for m in models
            if baseline is not None and m != baseline
        },
    )
