"""p-values from confidence intervals, the paper's verdict, and Holm's correction."""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from segeval.validation import InputError, check_level

SIGNIFICANT_INCREASE: Final = "significant increase"
SIGNIFICANT_DECREASE: Final = "significant decrease"
NOT_SIGNIFICANT: Final = "not significant"
UNDEFINED: Final = "undefined"


def p_value_from_ci(estimate: float, low: float, high: float, *, level: float = 0.95) -> float:
    """Two-sided p-value of a difference from its confidence interval (Altman & Bland, 2011).

    ``SE = (high - low) / (2 z)`` with ``z = 1.96`` for a 95% interval (in general the normal
    quantile of ``(1 + level) / 2``); then ``z = |estimate| / SE`` and
    ``p = exp(-0.717 z - 0.416 z^2)``. This is how the paper reports ΔAUC p-values.

    A zero-width interval gives p = 1 for a zero estimate and p = 0 otherwise. NaN in, NaN out.

    References
    ----------
    Altman DG, Bland JM. How to obtain the P value from a confidence interval. BMJ 2011;343:d2304.

    Examples
    --------
    >>> round(p_value_from_ci(0.05, 0.01, 0.09), 4)
    0.0142
    """
    check_level(level, "level")
    if any(math.isnan(v) for v in (estimate, low, high)):
        return float("nan")
    if high < low:
        raise InputError(f"The interval must have low <= high; got low={low!r}, high={high!r}.")
    z_level = 1.96 if level == 0.95 else float(norm.ppf((1 + level) / 2))
    se = (high - low) / (2 * z_level)
    if se == 0:
        return 1.0 if estimate == 0 else 0.0
    z = abs(estimate) / se
    return float(math.exp(-0.717 * z - 0.416 * z * z))


def p_value_from_bootstrap(delta: float, sd: float) -> float:
    """pROC's bootstrap test (``roc.test(method="bootstrap")``): D = Δ / sd(Δ*), p = 2Φ(−|D|).

    A zero ``sd`` gives p = 1 for a zero Δ and p = 0 otherwise. NaN in, NaN out.
    """
    if math.isnan(sd) or math.isnan(delta):
        return float("nan")
    if sd == 0:
        return 1.0 if delta == 0 else 0.0
    return float(2 * norm.sf(abs(delta / sd)))


VERDICT_RULES: Final = ("paper", "symmetric")


def verdict(
    ci_low: float, ci_high: float, p_value: float, *, alpha: float = 0.05, rule: str = "paper"
) -> str:
    """The reading of a difference such as ΔAUC = AUC(model) − AUC(baseline).

    ``rule="paper"`` (the default, the paper's): significant decrease iff the CI upper bound is
    < 0 and p < alpha; significant increase iff the CI lower bound is >= 0 and p < alpha. A lower
    bound of exactly 0, which discrete AUCs produce, counts as an increase while an upper bound
    of exactly 0 does not count as a decrease. ``rule="symmetric"``: increase iff the lower bound
    is > 0, decrease iff the upper bound is < 0 (each with p < alpha): an interval touching 0 is
    not significant either way. Otherwise not significant ("undefined" if any is NaN).

    Examples
    --------
    >>> verdict(0.0, 0.1, 0.01), verdict(0.0, 0.1, 0.01, rule="symmetric")
    ('significant increase', 'not significant')
    """
    if rule not in VERDICT_RULES:
        raise InputError(f"rule must be one of {', '.join(VERDICT_RULES)}; got {rule!r}.")
    if any(math.isnan(v) for v in (ci_low, ci_high, p_value)):
        return UNDEFINED
    if ci_high < 0 and p_value < alpha:
        return SIGNIFICANT_DECREASE
    increase = ci_low > 0 if rule == "symmetric" else ci_low >= 0
    if increase and p_value < alpha:
        return SIGNIFICANT_INCREASE
    return NOT_SIGNIFICANT


def holm(p_values: ArrayLike) -> NDArray[np.float64]:
    """Holm's step-down adjustment of a family of p-values (NaN entries are left out of the family).

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise InputError(f"p_values must be one-dimensional; got shape {p.shape}.")
    valid = ~np.isnan(p)
    if ((p[valid] < 0) | (p[valid] > 1)).any():
        raise InputError("p_values must lie in [0, 1].")
    out = np.full(p.shape, np.nan)
    pv = p[valid]
    m = pv.size
    if m == 0:
        return out
    order = np.argsort(pv, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * pv[order]))
    result = np.empty(m)
    result[order] = adjusted
    out[valid] = result
    return out
