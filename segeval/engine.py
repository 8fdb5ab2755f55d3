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
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import t as student_t

from segeval._kernels import OneVsRestAUC
from segeval.metrics import DEFAULT_EPS
from segeval.op_spread import SpreadStatistic, spread_table
from segeval.registry import (
    AUC,
    DEFAULT_METRICS,
    WLL,
    MetricSpec,
    resolve_metrics,
    undefined_reason,
)
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
T = TypeVar("T")
LABELS = (0, 1)  # segment leakage is measured within each label
# Permutations of the leakage summary's null: its 95th percentile to about ±0.01 of its range,
# and a permutation p-value down to 1/201.
NULL_PERMUTATIONS = 200
NULL_SPAWN_KEY = 2**31 + 1  # beside the resamples' children 0 … n_boot−1, never among them


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

    ``ci_low``/``ci_high`` cover images and seeds (Δ ± t·SE, see :func:`_runs`);
    ``images_ci_low``/``images_ci_high``
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

    ``results`` is empty when fewer than two segments hold images of the label. ``null``: the
    summary max |AUC − 0.5| under NULL_PERMUTATIONS permutations of the segments within the
    label (drawn from the evaluation's seed), its reference when no segment is set apart.
    """

    segments: tuple[str, ...]
    sizes: tuple[int, ...]
    results: tuple[BootstrapResult, ...]
    null: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)

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


def _what(name: str | None, label: str, model: str) -> str:
    """A statistic named in a warning: where, which, whose (``"score"``: a single-model call)."""
    return f"{_prefix(name)}{label}" + ("" if model == "score" else f" of {model}")


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
        if progress is not None and options is not None:
            progress(options.n_boot)
        return _undefined_part(
            reason, name, int(y.size), n_pos, specs, scores, baseline, ci, recipes
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
    values: dict[Hashable, BootstrapResult] = {
        (spec.name, m): _summary(draws, (spec.name, m), ci, keep, _what(name, spec.label, m))
        for m in scores
        for spec in drawn
    }
    notes = _notes(values, kernels, specs, scores, y, name)
    part = PartResult(
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
        leakage=_leakage_results(draws, leaks, ci, options) if leaks else {},
        runs=_runs(draws, recipes, options) if recipes and options else {},
        extra=Draws({k: draws.estimate(k) for k in extra}, {k: draws.of(k) for k in extra})
        if extra
        else None,
    )
    few = _few_cases_reason(int(y.size), n_pos, name) if options is not None and drawn else None
    return _without_intervals(part, few) if few else part


def _undefined_part(
    reason: str,
    name: str | None,
    n: int,
    n_pos: int,
    specs: Sequence[MetricSpec],
    models: Iterable[str],
    baseline: str | None,
    ci: float,
    recipes: Recipes | None = None,
) -> PartResult:
    """A part whose metrics are undefined (a class absent), after warning why."""
    warn(reason, UndefinedMetricWarning)
    return PartResult(
        name=name,
        n=n,
        n_pos=n_pos,
        reason=reason,
        metrics={(spec.name, m): undefined_result(ci) for spec in specs for m in models},
        comparisons={m: undefined_delta(ci) for m in models if baseline and m != baseline},
        spreads={},
        runs=_undefined_runs(recipes, ci) if recipes else {},
    )


MIN_CASES = 2  # of each class, for a bootstrap interval (DeLong needs as many)


def _few_cases_reason(n: int, n_pos: int, name: str | None) -> str | None:
    """Why a part's bootstrap intervals are undefined: a class with a single case.

    Every resample then holds that one image some number of times or not at all: the AUC is
    either undefined or takes the few values that image allows, and the percentile interval
    collapses (a segment with one positive read AUC CI (1.000, 1.000)), which looks like
    certainty. DeLong's variance is undefined there for the same reason.
    """
    n_neg = n - n_pos
    if min(n_pos, n_neg) >= MIN_CASES:
        return None
    what = "malignant image (label 1)" if n_pos < MIN_CASES else "benign image (label 0)"
    where = "The whole set" if name in (GLOBAL, None) else f"Segment {name}"
    return (
        f"{where} has a single {what}: its bootstrap intervals, p-values and verdicts are "
        f"undefined (every resample holds that image or not, so an interval would collapse)."
    )


def _without_intervals(part: PartResult, reason: str) -> PartResult:
    """The part's point estimates, with every interval, p-value and verdict undefined."""
    warn(reason, UndefinedMetricWarning)
    nan = float("nan")

    def bare(r: BootstrapResult) -> BootstrapResult:
        return replace(r, ci_low=nan, ci_high=nan, se=nan)

    def untested(result: T, **more: Any) -> T:
        """A comparison's result with no interval, p-value or verdict."""
        return cast(T, replace(
            cast(Any, result), ci_low=nan, ci_high=nan, se=nan, p_value=nan,
            p_value_bootstrap=nan, verdict=verdict(nan, nan, nan), **more,
        ))  # fmt: skip

    return replace(
        part,
        metrics={k: bare(r) for k, r in part.metrics.items()},
        comparisons={
            m: untested(r, auc_a=bare(r.auc_a), auc_b=bare(r.auc_b))
            for m, r in part.comparisons.items()
        },
        deltas={k: untested(d) for k, d in part.deltas.items()},
        runs={k: untested(r, images_ci_low=nan, images_ci_high=nan) for k, r in part.runs.items()},
        notes={m: " ".join(filter(None, [part.notes.get(m), reason])) for m in _models(part)},
    )


def _models(part: PartResult) -> list[str]:
    return list(dict.fromkeys(m for _, m in part.metrics))


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
    """One warning per part with the number of resamples excluded for holding one class,
    counted on a metric undefined exactly then (AUC, else WLL: a PPV is also undefined when no
    image scores above its threshold, which is another reason)."""
    probe = next((spec for spec in (AUC, WLL) if spec in specs), None)
    if options is None or probe is None or not scores:
        return
    first = draws.of((probe.name, next(iter(scores))))
    dropped = int(np.isnan(first).sum())
    if dropped:
        warn(
            f"{_prefix(name)}{dropped} of {options.n_boot} resamples hold one class only; "
            f"they are excluded from the intervals.",
            UndefinedMetricWarning,
        )


def _summary(
    draws: Draws, key: Hashable, ci: float, keep: bool, what: str = "The statistic"
) -> BootstrapResult:
    estimate = float(draws.estimate(key)[0])
    if np.isnan(ci):  # no bootstrap: the estimate alone
        return BootstrapResult(estimate, *(float("nan"),) * 3, 0, 0, ci)
    with warnings.catch_warnings():
        if np.isnan(estimate):  # undefined on the data: said once, with its reason (_notes)
            warnings.simplefilter("ignore", UndefinedMetricWarning)
        return summarize(estimate, draws.of(key)[:, 0], ci, keep=keep, what=what)


def compare(
    draws: Draws, baseline: str, model: str, options: BootstrapOptions | None, keep: bool = False
) -> DeltaAUCResult:
    """ΔAUC = AUC(model) − AUC(baseline) on the shared resamples, with the paper's p and verdict."""
    if options is None:
        raise ValueError("a comparison needs a bootstrap (n_boot >= 1)")
    ci = options.ci
    delta, p = _paired(draws, "auc", baseline, model, options, keep=keep)
    base, mine = draws.estimate(("auc", baseline))[0], draws.estimate(("auc", model))[0]
    return DeltaAUCResult(
        auc_a=summarize(base, draws.of(("auc", baseline))[:, 0], ci),
        auc_b=summarize(mine, draws.of(("auc", model))[:, 0], ci),
        delta=delta.estimate,
        ci_low=delta.ci_low,
        ci_high=delta.ci_high,
        se=delta.se,
        p_value=p,
        p_value_bootstrap=p_value_from_bootstrap(delta.estimate, delta.se),
        verdict=options.verdict(delta.ci_low, delta.ci_high, p),
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


def _paired(
    draws: Draws,
    metric: str,
    baseline: str,
    model: str,
    options: BootstrapOptions,
    *,
    keep: bool = False,
) -> tuple[BootstrapResult, float]:
    """metric(model) − metric(baseline) summarized over the shared resamples, and the paper's p
    (Altman & Bland, from the percentile CI): the core of every paired comparison."""
    base, mine = draws.estimate((metric, baseline))[0], draws.estimate((metric, model))[0]
    diff = draws.of((metric, model))[:, 0] - draws.of((metric, baseline))[:, 0]
    delta = summarize(mine - base, diff, options.ci, keep=keep)
    return delta, p_value_from_ci(delta.estimate, delta.ci_low, delta.ci_high, level=options.ci)


def _delta(
    draws: Draws, metric: str, baseline: str, model: str, options: BootstrapOptions
) -> DeltaResult:
    """metric(model) − metric(baseline) on the shared resamples, with the paper's p and verdict."""
    with warnings.catch_warnings():  # an undefined metric was warned about once, by name
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        delta, p = _paired(draws, metric, baseline, model, options)
    base, mine = draws.estimate((metric, baseline))[0], draws.estimate((metric, model))[0]
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
        verdict=options.verdict(delta.ci_low, delta.ci_high, p),
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
    draws: Draws,
    leaks: Mapping[Hashable, OneVsRestAUC],
    ci: float,
    options: BootstrapOptions | None,
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
        null = None
        if options is not None and stat.k >= 2:
            seq = options.seed
            rng = np.random.default_rng(
                np.random.SeedSequence(
                    seq.entropy, spawn_key=(*seq.spawn_key, NULL_SPAWN_KEY, label)
                )
            )
            null = stat.null_leakage(rng, NULL_PERMUTATIONS)
        out.setdefault(model, {})[label] = LeakagePart(stat.names, sizes, results, null)
    return out


def _runs(
    draws: Draws, recipes: Recipes, options: BootstrapOptions
) -> dict[str, RunsDeltaAUCResult]:
    """Each recipe against the baseline recipe over images and seeds.

    The image resamples are shared by every run (the runs' AUC draws). ΔAUC's variance over
    new test sets *and* new seeds has two parts: the image part, the bootstrap variance of the
    difference of the run means (images resampled, runs fixed), and the seed part, each recipe's
    between-seed variance of a run's AUC divided by its number of runs. Both come from the
    method of moments on the crossed (run x image) design: the spread of the runs' AUCs on the
    test set (ddof 1) holds the seed variance *and* each run's own image noise, which the image
    part counts too; that noise (the image-bootstrap variance of one run's AUC minus its
    covariance with another run's) is taken out of the image part, known precisely, so that the
    spread carries the seeds' uncertainty alone (see :func:`_seed_interval`). Resampling
    both runs and images instead (the "pigeonhole" bootstrap) counts that noise twice and
    deflates the seed variance by (R−1)/R: Owen (2007), "The pigeonhole bootstrap", Ann. Appl.
    Stat. 1:386–411; McCullagh (2000), "Resampling and exchangeable arrays", Bernoulli 6:285–301.
    The spread is pooled over both recipes (R_a + R_b − 2 degrees of freedom; a recipe with one
    run brings none), and the interval is Δ ± t·SE with Satterthwaite's degrees of freedom (the
    image part has many). With one run each there is no seed variation to
    estimate, and the interval is the images-only percentile interval, equal to
    :func:`segeval.bootstrap_delta_auc`.
    """
    base_runs = recipes.runs[recipes.baseline]
    aucs_a = np.array([draws.estimate(("auc", m))[0] for m in base_runs])
    auc_a = np.column_stack([draws.of(("auc", m))[:, 0] for m in base_runs])
    out = {}
    for recipe, runs in recipes.runs.items():
        if recipe == recipes.baseline:
            continue
        aucs_b = np.array([draws.estimate(("auc", m))[0] for m in runs])
        auc_b = np.column_stack([draws.of(("auc", m))[:, 0] for m in runs])
        estimate = float(aucs_b.mean() - aucs_a.mean())
        images_only = auc_b.mean(axis=1) - auc_a.mean(axis=1)
        images = summarize(estimate, images_only, options.ci, what="ΔAUC")
        if len(aucs_a) == 1 and len(aucs_b) == 1:
            low, high, se = images.ci_low, images.ci_high, images.se
            p = p_value_from_ci(estimate, low, high, level=options.ci)
        else:
            low, high, se, p = _seed_interval(
                estimate, images_only, (aucs_a, auc_a), (aucs_b, auc_b), options.ci
            )
        out[recipe] = RunsDeltaAUCResult(
            delta=estimate,
            ci_low=low,
            ci_high=high,
            se=se,
            p_value=p,
            p_value_bootstrap=p_value_from_bootstrap(estimate, se),
            verdict=options.verdict(low, high, p),
            images_ci_low=images.ci_low,
            images_ci_high=images.ci_high,
            runs_auc_a=tuple(float(v) for v in aucs_a),
            runs_auc_b=tuple(float(v) for v in aucs_b),
            n_boot_used=images.n_boot_used,
            n_boot_undefined=images.n_boot_undefined,
            ci=options.ci,
        )
    return out


def _run_noise(draws: NDArray[np.float64]) -> float:
    """Each run's own image noise: the image-bootstrap variance of one run's AUC minus its
    covariance with another run's (the part of the runs' spread that the images also move);
    0 with one run (nothing to tell it apart from the images' common part)."""
    r = draws.shape[1]
    if r < 2:
        return 0.0
    cov = np.cov(draws, rowvar=False)
    return float(np.mean(np.diag(cov)) - (cov.sum() - np.trace(cov)) / (r * (r - 1)))


def _seed_interval(
    estimate: float,
    images_only: NDArray[np.float64],
    a: tuple[NDArray[np.float64], NDArray[np.float64]],
    b: tuple[NDArray[np.float64], NDArray[np.float64]],
    ci: float,
) -> tuple[float, float, float, float]:
    """Δ ± t·SE over images and seeds (see :func:`_runs`): low, high, SE and p.

    SE² = [image-bootstrap variance of Δ − each recipe's run noise / its runs] + s²·(1/R_a +
    1/R_b), with s² the runs' spread of AUC (ddof 1) pooled over the two recipes: the bracket is
    the images' common part, known precisely from the resamples; s²/R carries the seeds and the
    runs' own noise, and all the uncertainty of the estimate, with R_a + R_b − 2 degrees of
    freedom (Satterthwaite's for the whole). A recipe with one run brings no spread, and its own
    noise stays in the bracket (conservative).
    """
    valid = ~np.isnan(images_only) & ~np.isnan(a[1]).any(axis=1) & ~np.isnan(b[1]).any(axis=1)
    if valid.sum() < 2:
        nan = float("nan")
        return nan, nan, nan, nan
    (aucs_a, draws_a), (aucs_b, draws_b) = (a[0], a[1][valid]), (b[0], b[1][valid])
    common = float(np.var(images_only[valid], ddof=1))
    common -= _run_noise(draws_a) / aucs_a.size + _run_noise(draws_b) / aucs_b.size
    spreads = [(float(np.var(x, ddof=1)), x.size - 1) for x in (aucs_a, aucs_b) if x.size > 1]
    df_seed = sum(df for _, df in spreads)
    pooled = sum(v * df for v, df in spreads) / df_seed
    seed_part = pooled * (1 / aucs_a.size + 1 / aucs_b.size)
    variance = max(common, 0.0) + seed_part
    se = float(np.sqrt(variance))
    if se == 0:
        return estimate, estimate, 0.0, 1.0 if estimate == 0 else 0.0
    df = variance**2 * df_seed / seed_part**2 if seed_part > 0 else float("inf")
    q = float(student_t.ppf((1 + ci) / 2, df))
    p = float(2 * student_t.sf(abs(estimate) / se, df))
    return estimate - q * se, estimate + q * se, se, p


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
    # Whether each class is present is all _part_reason reads of the labels.
    present = np.array([0] * (n > n_pos) + [1] * (n_pos > 0), dtype=np.int8)
    reason = _part_reason(present, specs, name)
    if reason:
        return _undefined_part(reason, name, n, n_pos, specs, models, baseline, options.ci)
    scores = dict.fromkeys(models)  # _warn_dropped reads the model names only
    _warn_dropped(draws, specs, scores, name, options)  # type: ignore[arg-type]
    part = PartResult(
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
    few = _few_cases_reason(n, n_pos, name)
    return _without_intervals(part, few) if few else part
