"""The metric registry: a metric is data, and nothing else spells its name.

A :class:`MetricSpec` says everything the engine, the tables, the report, the plots and the
diagnostics need to know of one metric: its name (also its column), a label, how to build its
bootstrap kernel once per part (rank once, then evaluate for any row weights, with a ``batch``
form for many resamples at once; see :mod:`segeval._kernels`), its direction and its parameters.
A *family* turns a name as the user writes it (``"sens@spec=0.9"``) into a spec.

Adding a metric is one kernel, one :func:`register` call and its tests::

    register(MetricFamily(
        name="youden@t",                      # written youden@t=0.5
        parameter="threshold",
        make=lambda t: MetricSpec(
            name=f"youden@t={t:g}", label=f"Youden's J at threshold {t:g}",
            short=f"J@{t:g}", build=lambda y, s, eps: YoudenKernel(y, s, threshold=t),
            higher_is_better=True, params={"threshold": t}),
    ))

after which ``evaluate(..., metrics=["auc", "youden@t=0.5"])`` and ``segeval report --metrics
auc,youden@t=0.5`` evaluate it per segment with CIs and paired differences against the baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from segeval._kernels import AUCKernel, WLLKernel
from segeval._op_kernels import (
    CalibrationInTheLarge,
    CalibrationSlope,
    NPVAtThreshold,
    PPVAtThreshold,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
)
from segeval.metrics import DEFAULT_EPS
from segeval.validation import (
    InputError,
    check_consistent_length,
    check_labels,
    check_sample_weight,
    check_scores,
    one_class_reason,
    warn_undefined,
)

DEFAULT_METRICS = ("wll", "auc")


class Kernel(Protocol):
    """A statistic of row weights, built once per part (see :mod:`segeval._kernels`)."""

    def __call__(self, w: NDArray[np.float64], total: float | None = None) -> float: ...

    def batch(self, w: NDArray[np.float64], totals: NDArray[np.float64]) -> NDArray[np.float64]: ...


KernelFactory = Callable[[NDArray[np.int8], NDArray[np.float64], float], Kernel]


@dataclass(frozen=True)
class MetricSpec:
    """One metric as the engine and every view of it see it.

    Attributes
    ----------
    name : str
        The metric as the user names it and as its column is named (``"sens@spec=0.9"``).
    label, short : str
        Its name in sentences (``"Sensitivity at specificity 0.9"``) and in table headers.
    build : callable
        ``build(y, score, eps)`` -> kernel, its parameters bound.
    higher_is_better : bool or None
        The direction; None for a metric with an ideal value instead (calibration).
    ideal : float or None
        The value of a perfect model, where there is one (calibration slope 1).
    probability : bool
        Whether the scores must be probabilities in [0, 1] (log loss, calibration).
    headline : bool
        Shown on the report's first screen beside the AUC (clinical operating-point metrics).
    params : mapping
        The parameters, e.g. ``{"level": 0.9}``.
    description : str
        One sentence for the report: what it measures and which way is better.
    build_exact : callable or None
        Where ``build``'s sums of non-integer values depend on the order of the rows, a variant
        whose sums are exact, used under ``resample="poisson"`` (None: ``build`` is used).
    """

    name: str
    label: str
    short: str
    build: KernelFactory = field(repr=False, compare=False)
    higher_is_better: bool | None = True
    ideal: float | None = None
    probability: bool = False
    headline: bool = False
    params: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    build_exact: KernelFactory | None = field(default=None, repr=False, compare=False)

    def kernel(
        self,
        y: NDArray[np.int8],
        score: NDArray[np.float64],
        eps: float = DEFAULT_EPS,
        *,
        exact: bool = False,
    ) -> Kernel:
        """The bootstrap kernel of this metric on one part (labels and scores validated).

        ``exact``: the variant whose integer-weighted sums are exact (``build_exact``), so
        Poisson resampling gives the same numbers however the rows are ordered or partitioned.
        """
        if exact and self.build_exact is not None:
            return self.build_exact(y, score, eps)
        return self.build(y, score, eps)

    def __call__(
        self, y_true: ArrayLike, y_score: ArrayLike, *, sample_weight: ArrayLike | None = None
    ) -> float:
        """The metric on data: ``f(y_true, y_score, *, sample_weight=None)``, NaN and a warning
        with the reason where it is undefined."""
        y = check_labels(y_true)
        s = check_scores(y_score, probability=self.probability)
        check_consistent_length(("y_true", y.size), ("y_score", s.size))
        checked = check_sample_weight(sample_weight, y.size)
        w = np.ones(y.size) if checked is None else checked
        kernel = self.kernel(y, s)
        value = float(kernel(w, float(w.sum())))
        if np.isnan(value):
            return warn_undefined(undefined_reason(kernel, self, y, w))
        return value


def undefined_reason(
    kernel: Kernel, spec: MetricSpec, y: NDArray[np.int8], w: NDArray[np.float64] | None = None
) -> str:
    """Why ``spec`` is undefined on this part: the kernel's own reason, or one class absent."""
    reason = getattr(kernel, "reason", None)
    said = reason(w) if callable(reason) else None
    return str(said or one_class_reason(y, spec.label, w) or f"{spec.label} is undefined.")


@dataclass(frozen=True)
class MetricFamily:
    """Metrics of one kind: ``name`` alone, or ``name=VALUE`` when it takes a ``parameter``.

    ``per_threshold``: the name alone stands for one metric per threshold of the evaluation
    (``--thresholds``), as ``"ppv"`` does.
    """

    name: str
    make: Callable[[float | None], MetricSpec]
    parameter: str | None = None
    help: str = ""
    per_threshold: bool = False
    alias: str | None = None


REGISTRY: dict[str, MetricFamily] = {}


def register(family: MetricFamily) -> MetricFamily:
    """Add a family of metrics to the registry (its name must be new)."""
    if family.name in REGISTRY:
        raise ValueError(f"a metric family named {family.name!r} is already registered")
    REGISTRY[family.name] = family
    return family


def _known() -> str:
    return ", ".join(
        f"{f.name}={f.parameter.upper()}" if f.parameter else f.name for f in REGISTRY.values()
    )


def _family(name: str) -> MetricFamily | None:
    name = name.strip()
    return REGISTRY.get(name) or next((f for f in REGISTRY.values() if f.alias == name), None)


def get_metric(name: str) -> MetricSpec:
    """The spec of one metric named as the user writes it: ``"auc"``, ``"sens@spec=0.9"``."""
    if not isinstance(name, str):
        raise InputError(f"A metric is named by a string; got {name!r}. The metrics: {_known()}.")
    family_name, sep, value = name.strip().partition("=")
    family = _family(family_name)
    if family is None:
        raise InputError(f"Unknown metric {name!r}; the metrics are {_known()}.")
    if family.parameter is None:
        if sep:
            raise InputError(f"Metric {family.name!r} takes no parameter; got {name!r}.")
        return family.make(None)
    if not sep:
        raise InputError(
            f"Metric {family.name!r} needs its {family.parameter}: write "
            f"{family.name}={family.parameter.upper()}, e.g. {family.name}=0.9."
        )
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 <= number <= 1 or (family.parameter == "level" and number in (0, 1)):
        bounds = "strictly between 0 and 1" if family.parameter == "level" else "in [0, 1]"
        raise InputError(
            f"The {family.parameter} of metric {family.name!r} must be a number {bounds}; "
            f"got {value.strip()!r}."
        )
    return family.make(number)


def resolve_metrics(
    names: str | Iterable[str] | None, *, thresholds: Sequence[float] = ()
) -> tuple[MetricSpec, ...]:
    """Specs of the metrics named (a list, or one comma-separated string), in the order given.

    A per-threshold family named alone (``"ppv"``) becomes one metric per threshold. None gives
    the default metrics, WLL and AUC.
    """
    if names is None:
        names = DEFAULT_METRICS
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    names = list(names)
    if not names:
        raise InputError("metrics is empty; name at least one metric, e.g. auc.")
    specs: list[MetricSpec] = []
    for name in names:
        family = _family(name) if isinstance(name, str) else None
        if family is not None and family.per_threshold:
            specs += [family.make(float(t)) for t in thresholds]
        else:
            specs.append(get_metric(name))
    out = tuple({spec.name: spec for spec in specs}.values())  # repeated names once
    return out


def _fixed(spec: MetricSpec) -> Callable[[float | None], MetricSpec]:
    return lambda _: spec


AUC = MetricSpec(
    name="auc",
    label="ROC AUC",
    short="AUC",
    build=lambda y, s, eps: AUCKernel(y, s),
    higher_is_better=True,
    description="ROC AUC, the Mann-Whitney statistic with ties counting one half (higher is "
    "better)",
)
WLL = MetricSpec(
    name="wll",
    label="Weighted log loss",
    short="WLL",
    build=lambda y, s, eps: WLLKernel(y, s, eps),
    build_exact=lambda y, s, eps: WLLKernel(y, s, eps, exact=True),
    higher_is_better=False,
    probability=True,
    description="the log loss per image with class weights estimated on the set evaluated "
    "(lower is better)",
)
register(MetricFamily("wll", _fixed(WLL), help="weighted log loss per image (the paper's)"))
register(MetricFamily("auc", _fixed(AUC), help="ROC AUC (Mann-Whitney, ties one half)"))


def _at_level(
    name: str, what: str, given: str, short: str, kernel: Callable[..., Kernel], example: str
) -> MetricFamily:
    """``sens@spec=L`` and ``spec@sens=L``: the best ``what`` among the thresholds whose
    ``given`` rate is at least L."""

    def make(value: float | None) -> MetricSpec:
        level = float(value or 0)
        return MetricSpec(
            name=f"{name}={level:g}",
            label=f"{what.capitalize()} at {given} {level:g}",
            short=f"{short} {level:g}",
            build=lambda y, s, eps: kernel(y, s, level=level),
            higher_is_better=True,
            headline=True,
            params={"level": level},
            description=f"the highest {what} among the thresholds whose {given} is at least "
            f"{level:g} on the set evaluated (higher is better)",
        )

    return MetricFamily(
        name, make, parameter="level", help=f"{what} at a fixed {given}, e.g. {example}"
    )


def _at_threshold(name: str, what: str, among: str, kernel: Callable[..., Kernel]) -> MetricFamily:
    """``ppv@t=T`` and ``npv@t=T`` (or ``ppv`` / ``npv`` alone: one per threshold)."""
    short = name.upper()

    def make(value: float | None) -> MetricSpec:
        t = float(value or 0)
        return MetricSpec(
            name=f"{name}@t={t:g}",
            label=f"{short} at threshold {t:g}",
            short=f"{short}@{t:g}",
            build=lambda y, s, eps: kernel(y, s, threshold=t),
            higher_is_better=True,
            headline=True,
            params={"threshold": t},
            description=f"the share of {among.format(t=f'{t:g}')} (higher is better; it depends "
            "on the prevalence)",
        )

    return MetricFamily(
        f"{name}@t",
        make,
        parameter="threshold",
        per_threshold=True,
        alias=name,
        help=f"{what} at threshold T, e.g. {name}@t=0.5; {name} alone: at each of --thresholds",
    )


register(
    _at_level(
        "sens@spec", "sensitivity", "specificity", "Sens@Spec", SensitivityAtSpecificity,
        "sens@spec=0.9",
    )
)  # fmt: skip
register(
    _at_level(
        "spec@sens", "specificity", "sensitivity", "Spec@Sens", SpecificityAtSensitivity,
        "spec@sens=0.85",
    )
)  # fmt: skip
register(
    _at_threshold(
        "ppv", "positive predictive value", "malignant images among those scored at or above "
        "{t}", PPVAtThreshold,
    )
)  # fmt: skip
register(
    _at_threshold(
        "npv", "negative predictive value", "benign images among those scored below {t}",
        NPVAtThreshold,
    )
)  # fmt: skip
CALIBRATION_SLOPE = MetricSpec(
    name="cal_slope",
    label="Calibration slope",
    short="Cal. slope",
    build=lambda y, s, eps: CalibrationSlope(y, s, eps=eps),
    higher_is_better=None,
    ideal=1.0,
    probability=True,
    description="the slope b of logit P(malignant) = a + b logit(score) (ideal 1; below 1 the "
    "scores are too extreme, above 1 too timid)",
)
CALIBRATION_IN_THE_LARGE = MetricSpec(
    name="citl",
    label="Calibration in the large",
    short="CITL",
    build=lambda y, s, eps: CalibrationInTheLarge(y, s, eps=eps),
    higher_is_better=None,
    ideal=0.0,
    probability=True,
    description="calibration in the large, the intercept a of logit P(malignant) = a + "
    "logit(score) (ideal 0; above 0 the scores are too low on average)",
)
register(
    MetricFamily(
        "cal_slope",
        _fixed(CALIBRATION_SLOPE),
        help="logistic calibration slope (ideal 1; below 1: scores too extreme)",
    )
)
register(
    MetricFamily(
        "citl",
        _fixed(CALIBRATION_IN_THE_LARGE),
        help="calibration in the large, logit intercept with the score as offset (ideal 0)",
    )
)


def metrics_help() -> str:
    """One line per family, for ``--help`` and the README."""
    return "; ".join(f"{f.name}: {f.help}" for f in REGISTRY.values())
