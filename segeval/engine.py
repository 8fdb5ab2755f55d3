"""The evaluation engine: every bootstrap number of segeval comes from :func:`evaluate_part`.

A *part* is the whole set or one segment. For any number of models it draws one set of
resamples and evaluates, as named statistics on those resamples:

- each model's metrics (``("wll", model)``, ``("auc", model)``) with percentile CIs;
- each model's paired ΔAUC against a baseline model (from the same resamples);
- each model's operating-point spread across segments (``("op_spread", model)``).

:func:`segeval.bootstrap_auc`, :func:`segeval.bootstrap_delta_auc`, :func:`segeval.segment_table`,
:func:`segeval.op_synchronization` and :func:`segeval.evaluate` are views of this function, so
their numbers agree by construction. Inputs arrive validated; rules shared by all views (the
undefined path, the p-values, the verdict, the resample warnings) live here once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from segeval._kernels import AUCKernel, WLLKernel
from segeval.metrics import DEFAULT_EPS
from segeval.op_spread import SpreadStatistic, spread_table
from segeval.resampling import (
    BootstrapOptions,
    BootstrapResult,
    DrawCache,
    Draws,
    Resampler,
    Statistic,
    bootstrap_distribution,
    summarize,
    undefined_result,
)
from segeval.segments import GLOBAL, Segments
from segeval.significance import p_value_from_bootstrap, p_value_from_ci, verdict
from segeval.validation import (
    UndefinedMetricWarning,
    one_class_reason,
    readable_repr,
    warn_undefined,
)

METRICS = ("wll", "auc")
_WHAT: dict[tuple[str, ...], str] = {("auc",): "ROC AUC", ("wll",): "Weighted log loss"}


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
class SpreadResult:
    """One model's operating points per segment and their spread per threshold."""

    points: pd.DataFrame
    table: pd.DataFrame
    excluded: tuple[str, ...]
    reason: str | None

    def __repr__(self) -> str:
        return readable_repr(self)


@dataclass(frozen=True, repr=False)
class PartResult:
    """Everything the engine computed on one part; metrics are keyed (statistic, model)."""

    name: str | None
    n: int
    n_pos: int
    reason: str | None
    metrics: dict[tuple[str, str], BootstrapResult]
    comparisons: dict[str, DeltaAUCResult]
    spreads: dict[str, SpreadResult]

    def __repr__(self) -> str:
        return readable_repr(self)


def _prefix(name: str | None) -> str:
    if name == GLOBAL:
        return "Whole set: "
    return f"Segment {name}: " if name else ""


def _part_reason(y: NDArray[np.int8], what: str, name: str | None) -> str | None:
    """Why the metrics are undefined on a part, in plain words when the part has a name."""
    reason = one_class_reason(y, what)
    if not reason or not name:
        return reason
    missing = "malignant images (label 1)" if y.sum() == 0 else "benign images (label 0)"
    where = "The whole set" if name == GLOBAL else f"Segment {name}"
    verb = "are" if what == "WLL or AUC" else "is"
    metric = "WLL and AUC" if what == "WLL or AUC" else what
    return f"{where} has no {missing}: its {metric} {verb} undefined."


def undefined_delta(ci: float) -> DeltaAUCResult:
    """A comparison on a part where AUC is undefined (the caller has warned why)."""
    nan = float("nan")
    und = undefined_result(ci)
    return DeltaAUCResult(und, und, nan, nan, nan, nan, nan, nan, verdict(nan, nan, nan), 0, 0, ci)


def evaluate_part(
    y: NDArray[np.int8],
    scores: Mapping[str, NDArray[np.float64]],
    *,
    options: BootstrapOptions | None,
    metrics: Sequence[str] = METRICS,
    baseline: str | None = None,
    segments: Segments | None = None,
    thresholds: NDArray[np.float64] | None = None,
    clusters: NDArray[np.generic] | None = None,
    eps: float = DEFAULT_EPS,
    name: str | None = None,
    keep: bool = False,
    progress: Callable[[int], None] | None = None,
    cache: DrawCache | None = None,
) -> PartResult:
    """Metrics, comparisons against ``baseline`` and OP spreads of every model on one part.

    ``options=None`` gives point estimates only (no resample). ``segments`` and ``thresholds``
    ask for the OP spread; ``keep`` keeps the bootstrap distributions in the results. Parts of
    one evaluation share a ``cache`` of draws (same size, same seed: same local resamples).
    """
    metrics = tuple(metrics)
    n_pos = int(y.sum())
    what = _WHAT.get(metrics, "WLL or AUC")
    reason = _part_reason(y, what, name) if metrics else None
    if reason:
        warnings.warn(reason, UndefinedMetricWarning, stacklevel=3)
        if progress is not None and options is not None:
            progress(options.n_boot)
        ci = options.ci if options else float("nan")
        return PartResult(
            name=name,
            n=int(y.size),
            n_pos=n_pos,
            reason=reason,
            metrics={(stat, m): undefined_result(ci) for stat in metrics for m in scores},
            comparisons={m: undefined_delta(ci) for m in scores if baseline and m != baseline},
            spreads={},
        )
    statistics: dict[Hashable, Statistic] = {}
    for m, s in scores.items():
        if "wll" in metrics:
            statistics["wll", m] = WLLKernel(y, s, eps)
        if "auc" in metrics:
            statistics["auc", m] = AUCKernel(y, s)
    spreads = _spread_statistics(y, scores, segments, thresholds, name)
    for m, spread in spreads.items():
        if not spread.reason:
            statistics["op_spread", m] = spread
    draws = _draw(statistics, y, clusters, options, progress, cache)
    ci = options.ci if options else float("nan")
    _warn_dropped(draws, metrics, scores, name, options)
    return PartResult(
        name=name,
        n=int(y.size),
        n_pos=n_pos,
        reason=None,
        metrics={
            (stat, m): _summary(draws, (stat, m), ci, keep) for m in scores for stat in metrics
        },
        comparisons={
            m: compare(draws, baseline, m, options, keep)
            for m in scores
            if baseline is not None and m != baseline
        },
        spreads={m: _spread_result(draws, m, spread, ci) for m, spread in spreads.items()},
    )


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
        warnings.warn(
            f"{_prefix(name)}Segments with one class only have no operating point and are left "
            f"out: {', '.join(first.excluded)}.",
            UndefinedMetricWarning,
            stacklevel=4,
        )
    if first is not None and first.reason:
        warn_undefined(_prefix(name) + first.reason)
    return spreads


def _draw(
    statistics: dict[Hashable, Statistic],
    y: NDArray[np.int8],
    clusters: NDArray[np.generic] | None,
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
        Resampler(y, resample=options.resample, clusters=clusters),
        n_boot=options.n_boot,
        seed=options.seed,
        n_jobs=options.n_jobs,
        progress=progress,
        cache=cache,
    )


def _warn_dropped(
    draws: Draws,
    metrics: tuple[str, ...],
    scores: Mapping[str, NDArray[np.float64]],
    name: str | None,
    options: BootstrapOptions | None,
) -> None:
    """One warning per part with the number of resamples excluded for holding one class."""
    if options is None or not metrics or not scores:
        return
    first = draws.of((metrics[0], next(iter(scores))))
    dropped = int(np.isnan(first).sum())
    if dropped:
        warnings.warn(
            f"{_prefix(name)}{dropped} of {options.n_boot} resamples hold one class only; "
            f"they are excluded from the intervals.",
            UndefinedMetricWarning,
            stacklevel=4,
        )


def _summary(draws: Draws, key: tuple[str, str], ci: float, keep: bool) -> BootstrapResult:
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
            warnings.warn(
                f"OP spread{whose}: {dropped} of {len(draws.of(key))} resamples leave a "
                f"segment with one class; they are excluded from its interval.",
                UndefinedMetricWarning,
                stacklevel=3,
            )
    return SpreadResult(spread.points(), table, spread.excluded, spread.reason)
