"""Operating-point and calibration kernels: rank (or prepare) once, evaluate for any weights.

Same contract as :mod:`segeval._kernels`: a kernel is built once from labels and scores, then
``kernel(w)`` gives the statistic for non-negative row weights ``w`` (ones = the plain metric,
bootstrap counts = one resample), ``kernel.batch(W, totals)`` gives it for every row of a (B, n)
weight matrix, and ``kernel.reason(w)`` says in one sentence why it is NaN for ``w`` (None when
it is defined). ``__call__`` is ``batch`` on a single row, so the two agree by construction and a
row's value never depends on the other rows of a batch (every sum is taken along the row).

Operating points follow the project's convention: an image is predicted positive iff
``score >= t``.

- :class:`SensitivityAtSpecificity` / :class:`SpecificityAtSensitivity`: the thresholds are every
  distinct score plus ``+inf`` (nobody positive). Sorted once by decreasing score, so for weights
  ``w`` the weighted TP and FP counts at every threshold are cumulative sums read at the ends of
  the tie groups: O(n) per resample. A constraint such as "specificity >= 0.9" is compared on
  weighted counts, ``FP <= (1 - level + REL_TOL) * W_neg``: without the tolerance
  ``(1 - 0.9) * 10`` rounds to ``0.9999999999999998`` and ten negatives would not allow one false
  positive. ``REL_TOL = 1e-12`` is far above rounding error and far below any real change of rate.
- :class:`PPVAtThreshold` / :class:`NPVAtThreshold`: ratios of two weighted sums over fixed
  masks, O(n) per resample with no sort at all.
- :class:`CalibrationInTheLarge` / :class:`CalibrationSlope`: logistic recalibration (Cox 1958),
  the first two levels of the "calibration hierarchy" of Van Calster et al. (J Clin Epidemiol
  2016;74:167-76; BMC Med 2019;17:230). With ``z = logit(p)`` (``p`` clipped to
  ``[eps, 1 - eps]``), the slope is ``b`` of the weighted fit ``logit P(y=1) = a + b z`` and
  calibration-in-the-large (CITL) is ``a`` of ``logit P(y=1) = a + z`` (offset ``z``, slope fixed
  at 1). Ideal values: CITL 0 (CITL < 0: risks too high on average), slope 1 (slope < 1: risks
  too extreme, the usual sign of overfitting). Both are maximum-likelihood fits by safeguarded
  Newton iterations, each O(n), vectorised over the resamples of a batch.

Why these rather than the expected calibration error (ECE): ECE depends on an arbitrary choice of
bins (count, equal-width or equal-mass), and as a mean of absolute binned gaps it is biased upward
at small n, because sampling noise in each bin adds to the gap instead of averaging out. A small
segment therefore looks worse calibrated than a large one with the same true calibration, which
defeats the comparison of segments of different sizes that segeval exists for. CITL and slope have
no tuning parameter, are (asymptotically) unbiased maximum-likelihood estimates, and separate the
two failures ECE mixes: a shift of all risks and risks that are too extreme or too modest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, log_expit

from segeval._kernels import Weights
from segeval.validation import InputError, one_class_reason

# Relative slack of a rate constraint (see the module docstring): counts within 1e-12 of the
# class weight of the bound are taken as meeting it.
REL_TOL = 1e-12
# Newton iterations of the calibration fits. From the start below both converge in well under
# 20 on ordinary data; a fit still moving after MAX_ITER is reported as not converged (NaN).
MAX_ITER = 100
# Step halvings of the slope fit's line search (step 2**-60 is below any useful move).
MAX_HALVINGS = 60
# A fit stops once its Newton step is below STEP_TOL (relative): Newton converges quadratically,
# so the error after that last step is of order STEP_TOL**2, i.e. at machine precision.
STEP_TOL = 1e-10


def _as_matrix(w: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(w, dtype=np.float64).reshape(-1, np.shape(w)[-1])


class _Kernel:
    """``__call__`` and ``reason(None)`` in terms of ``batch`` and ``_reason``."""

    n: int

    def batch(self, w: NDArray[np.float64], totals: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError

    def _reason(self, w: NDArray[np.float64]) -> str | None:
        raise NotImplementedError

    def __call__(self, w: Weights, total: float | None = None) -> float:
        """The statistic for row weights ``w``.

        ``total`` (``w.sum()``) is accepted for the kernel contract but not needed: each kernel
        sums the weights it uses itself, so ``__call__`` and ``batch`` see the same sums.
        """
        row = _as_matrix(w)
        totals = row.sum(axis=1) if total is None else np.array([total], dtype=np.float64)
        return float(self.batch(row, totals)[0])

    def reason(self, w: NDArray[Any] | None = None) -> str | None:
        """Why the statistic is NaN for weights ``w`` (None: all ones), or None if defined."""
        return self._reason(np.ones(self.n) if w is None else np.asarray(w, dtype=np.float64))


def check_rate_level(level: Any) -> float:
    """A sensitivity or specificity level strictly between 0 and 1."""
    if (
        isinstance(level, bool)
        or not isinstance(level, (int, float, np.integer, np.floating))
        or not 0 < float(level) < 1
    ):
        raise InputError(f"level must be a rate strictly between 0 and 1; got {level!r}.")
    return float(level)


def check_threshold(threshold: Any) -> float:
    """A finite score threshold."""
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float, np.integer, np.floating))
        or not np.isfinite(threshold)
    ):
        raise InputError(f"threshold must be a finite number; got {threshold!r}.")
    return float(threshold)


def check_eps(eps: Any) -> float:
    """A clipping bound of probabilities in (0, 0.5)."""
    if (
        isinstance(eps, bool)
        or not isinstance(eps, (int, float, np.floating))
        or not 0 < float(eps) < 0.5
    ):
        raise InputError(f"eps must be in (0, 0.5); got {eps!r}.")
    return float(eps)


class _BestRateUnderConstraint(_Kernel):
    """Largest weighted rate of the "hit" class among thresholds meeting a bound on the other.

    Rows are sorted once by decreasing score. Predicting the top ``k`` tie groups positive
    (k = 0 is the threshold +inf), ``hit[k]`` is the weight of rows of the hit class predicted
    positive and ``cost[k]`` that of rows of the other class (true and false positives for
    sensitivity at specificity). Both grow with k, so the thresholds with
    ``cost[k] <= (1 - level + REL_TOL) * W_other`` are a prefix and the best is the last of them:
    counting the admissible ones finds it without a search.
    """

    def __init__(
        self, hit_label: NDArray[np.bool_], key: NDArray[np.float64], level: float
    ) -> None:
        self.n = key.size
        self.order = np.argsort(-key, kind="stable")
        self.is_hit = hit_label[self.order]
        ranked = key[self.order]
        # Last row of each tie group: thresholds fall only between distinct scores.
        self.ends = np.r_[np.flatnonzero(np.diff(ranked) != 0), self.n - 1]
        self.slack = 1.0 - level + REL_TOL

    def batch(self, w: NDArray[np.float64], totals: NDArray[np.float64]) -> NDArray[np.float64]:
        """The statistic for each row of a (B, n) weight matrix (``totals`` unused)."""
        ranked = _as_matrix(w)[:, self.order]
        hit = np.cumsum(np.where(self.is_hit, ranked, 0.0), axis=1)
        cost = np.cumsum(np.where(self.is_hit, 0.0, ranked), axis=1)
        w_hit, w_cost = hit[:, -1], cost[:, -1]
        admissible = cost[:, self.ends] <= (self.slack * w_cost)[:, None]
        k = admissible.sum(axis=1)  # groups predicted positive; 0 = nobody
        padded = np.hstack([np.zeros((ranked.shape[0], 1)), hit[:, self.ends]])
        best = padded[np.arange(ranked.shape[0]), k]
        undefined = (w_hit <= 0) | (w_cost <= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(best / w_hit, dtype=np.float64)
        out[undefined] = np.nan
        return out


class SensitivityAtSpecificity(_BestRateUnderConstraint):
    """Largest weighted sensitivity (TPR) among thresholds with specificity (TNR) >= ``level``.

    Thresholds: every distinct score and ``+inf``; a threshold is admissible iff its weighted
    false positives satisfy ``FP <= (1 - level + REL_TOL) * W_neg``. Undefined when the weights
    hold no positive or no negative.
    """

    def __init__(
        self, y_true: NDArray[np.int8], y_score: NDArray[np.float64], *, level: float
    ) -> None:
        self.level = check_rate_level(level)
        self.y = y_true
        super().__init__(y_true == 1, y_score, self.level)

    def _reason(self, w: NDArray[np.float64]) -> str | None:
        return one_class_reason(self.y, f"Sensitivity at specificity {self.level:g}", w)


class SpecificityAtSensitivity(_BestRateUnderConstraint):
    """Largest weighted specificity (TNR) among thresholds with sensitivity (TPR) >= ``level``.

    The mirror image of :class:`SensitivityAtSpecificity`: with labels and score order swapped
    (negatives as the "hit" class, scores negated) the thresholds ``score >= t`` become
    ``score <= t'``, which split the tie groups in exactly the same places, and TNR becomes the
    rate of predicted "positives". Admissible iff ``FN <= (1 - level + REL_TOL) * W_pos``, i.e.
    ``TP >= (level - REL_TOL) * W_pos``.
    """

    def __init__(
        self, y_true: NDArray[np.int8], y_score: NDArray[np.float64], *, level: float
    ) -> None:
        self.level = check_rate_level(level)
        self.y = y_true
        super().__init__(y_true == 0, -y_score, self.level)

    def _reason(self, w: NDArray[np.float64]) -> str | None:
        return one_class_reason(self.y, f"Specificity at sensitivity {self.level:g}", w)


class _PredictiveValue(_Kernel):
    """Weight of the correctly predicted rows among the rows predicted on one side of ``t``."""

    name: str
    side: str

    def __init__(self, selected: NDArray[np.bool_], correct: NDArray[np.bool_], t: float) -> None:
        self.n = selected.size
        self.threshold = t
        self.selected = selected.astype(np.float64)
        self.correct = (selected & correct).astype(np.float64)

    def batch(self, w: NDArray[np.float64], totals: NDArray[np.float64]) -> NDArray[np.float64]:
        """The statistic for each row of a (B, n) weight matrix (``totals`` unused)."""
        w = _as_matrix(w)
        # Row sums, not a matrix product: a row's value must not depend on the batch around it.
        hits = (w * self.correct).sum(axis=1)
        base = (w * self.selected).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(hits / base, dtype=np.float64)
        out[base <= 0] = np.nan
        return out

    def _reason(self, w: NDArray[np.float64]) -> str | None:
        if float((w * self.selected).sum()) > 0:
            return None
        t = f"{self.threshold:g}"
        what = f"{self.name} at threshold {t} is undefined"
        if not self.selected.any():
            return f"{what}: no image scores {self.side} {t}."
        return f"{what}: every image scoring {self.side} {t} has zero weight."


class PPVAtThreshold(_PredictiveValue):
    """Positive predictive value ``W(positive & score >= t) / W(score >= t)``.

    Undefined when no weight lies at or above ``t``. Defined (possibly 0) without positives.
    """

    name, side = "PPV", "at or above"

    def __init__(
        self, y_true: NDArray[np.int8], y_score: NDArray[np.float64], *, threshold: float
    ) -> None:
        t = check_threshold(threshold)
        super().__init__(y_score >= t, y_true == 1, t)


class NPVAtThreshold(_PredictiveValue):
    """Negative predictive value ``W(negative & score < t) / W(score < t)``.

    Undefined when no weight lies below ``t``. Defined (possibly 0) without negatives.
    """

    name, side = "NPV", "below"

    def __init__(
        self, y_true: NDArray[np.int8], y_score: NDArray[np.float64], *, threshold: float
    ) -> None:
        t = check_threshold(threshold)
        super().__init__(y_score < t, y_true == 0, t)


class _Recalibration(_Kernel):
    """Shared data of the logistic recalibration fits: logits, label signs, class sums."""

    what: str

    def __init__(
        self, y_true: NDArray[np.int8], y_score: NDArray[np.float64], *, eps: float = 1e-15
    ) -> None:
        self.eps = check_eps(eps)
        self.n = y_true.size
        self.y = y_true
        p = np.clip(y_score, self.eps, 1.0 - self.eps)
        self.z = np.log(p) - np.log1p(-p)
        self.is_pos = (y_true == 1).astype(np.float64)
        # sign * eta is the margin of the observed class: loglik = sum w log_expit(sign * eta).
        self.sign = 2.0 * self.is_pos - 1.0

    def _class_weights(
        self, w: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        w_pos = (w * self.is_pos).sum(axis=1)
        return w_pos, w.sum(axis=1) - w_pos

    def _terms(
        self, w: NDArray[np.float64], eta: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-row score ``w * (y - mu)`` and information ``w * mu * (1 - mu)`` terms."""
        # expit(-margin) is the probability of the class not observed: exact even where mu
        # rounds to 0 or 1, unlike 1 - mu.
        miss = expit(-self.sign * eta)
        return w * self.sign * miss, w * miss * expit(self.sign * eta)

    def _reason(self, w: NDArray[np.float64]) -> str | None:
        reason = one_class_reason(self.y, self.what, w)
        if reason is None and np.isnan(self(w)):
            return (
                f"{self.what} is undefined: the logistic fit did not converge in {MAX_ITER} "
                "Newton iterations."
            )
        return reason


class CalibrationInTheLarge(_Recalibration):
    """Intercept ``a`` of the weighted logistic fit ``logit P(y=1) = a + logit(p)`` (ideal 0).

    Solves the score equation ``sum w (y - expit(a + z)) = 0``, decreasing in ``a``, by Newton
    steps kept inside a bracket (bisection when a step leaves it). With ``pi = W_pos / W`` the
    root lies in ``[logit(pi) - max z, logit(pi) - min z]``, since the weighted mean of
    ``expit(a + z)`` must equal ``pi``. Undefined when a class has no weight.
    """

    what = "Calibration-in-the-large"

    def batch(self, w: NDArray[np.float64], totals: NDArray[np.float64]) -> NDArray[np.float64]:
        """CITL for each row of a (B, n) weight matrix (``totals`` unused)."""
        w = _as_matrix(w)
        w_pos, w_neg = self._class_weights(w)
        out = np.full(w.shape[0], np.nan)
        rows = np.flatnonzero((w_pos > 0) & (w_neg > 0))
        if rows.size == 0:
            return out
        w = w[rows]
        pi_logit = np.log(w_pos[rows]) - np.log(w_neg[rows])
        lo, hi = pi_logit - self.z.max(), pi_logit - self.z.min()
        a = pi_logit - (w * self.z).sum(axis=1) / w.sum(axis=1)  # inside [lo, hi]
        active = np.arange(rows.size)
        for _ in range(MAX_ITER):
            score, info = self._terms(w[active], a[active, None] + self.z)
            g, h = score.sum(axis=1), info.sum(axis=1)
            a_now = a[active]
            lo[active] = np.where(g > 0, a_now, lo[active])
            hi[active] = np.where(g < 0, a_now, hi[active])
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(g == 0, 0.0, g / h)
            newton = a_now + step
            # Judged on the Newton step before the bracket: near the root a step below rounding
            # lands on the bracket's end and must not be mistaken for a leap out of it.
            done = np.abs(step) <= STEP_TOL * (1.0 + np.abs(a_now))
            inside = (newton > lo[active]) & (newton < hi[active])
            a_new = np.where(inside | done, newton, 0.5 * (lo[active] + hi[active]))
            a[active] = a_new
            out[rows[active[done]]] = a_new[done]
            active = active[~done]
            if active.size == 0:
                break
        return out


class CalibrationSlope(_Recalibration):
    """Slope ``b`` of the weighted logistic fit ``logit P(y=1) = a + b logit(p)`` (ideal 1).

    Newton-Raphson (IRLS) from ``a = logit(pi), b = 0`` with a backtracking line search on the
    log-likelihood, which is concave, so the iterations converge whenever the maximum exists. It
    exists iff the classes overlap in ``z`` among rows of positive weight (Albert & Anderson
    1984): some negative scores above some positive and some positive above some negative. When
    every positive scores at or above every negative (or the reverse; this includes all scores
    equal) the likelihood keeps rising as ``|b|`` grows and the slope is undefined (NaN).
    """

    what = "Calibration slope"

    def _overlap(self, w: NDArray[np.float64]) -> NDArray[np.bool_]:
        pos = (w > 0) & (self.is_pos == 1)
        neg = (w > 0) & (self.is_pos == 0)
        min_pos = np.where(pos, self.z, np.inf).min(axis=1)
        max_pos = np.where(pos, self.z, -np.inf).max(axis=1)
        min_neg = np.where(neg, self.z, np.inf).min(axis=1)
        max_neg = np.where(neg, self.z, -np.inf).max(axis=1)
        return np.asarray((min_pos < max_neg) & (min_neg < max_pos))

    def _reason(self, w: NDArray[np.float64]) -> str | None:
        reason = one_class_reason(self.y, self.what, w)
        if reason is not None:
            return reason
        if not self._overlap(_as_matrix(w))[0]:
            z = self.z[w > 0]
            if z.min() == z.max():
                return (
                    f"{self.what} is undefined: every image has the same score (after clipping "
                    "to [eps, 1 - eps]), so no slope can be fitted."
                )
            return (
                f"{self.what} is undefined: the scores separate the classes (every positive "
                "scores at or above every negative, or the reverse), so the fitted slope "
                "diverges."
            )
        return super()._reason(w)

    def _loglik(
        self, w: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        eta = a[:, None] + b[:, None] * self.z
        return np.asarray((w * log_expit(self.sign * eta)).sum(axis=1), dtype=np.float64)

    def batch(self, w: NDArray[np.float64], totals: NDArray[np.float64]) -> NDArray[np.float64]:
        """Slope for each row of a (B, n) weight matrix (``totals`` unused)."""
        w = _as_matrix(w)
        w_pos, w_neg = self._class_weights(w)
        out = np.full(w.shape[0], np.nan)
        rows = np.flatnonzero((w_pos > 0) & (w_neg > 0) & self._overlap(w))
        if rows.size == 0:
            return out
        w = w[rows]
        a = np.log(w_pos[rows]) - np.log(w_neg[rows])
        b = np.zeros(rows.size)
        ll = self._loglik(w, a, b)
        active = np.arange(rows.size)
        for _ in range(MAX_ITER):
            a0, b0 = a[active], b[active]
            da, db = self._newton_step(w[active], a0, b0)
            # Judged on the full Newton step: a damped step can be short far from the optimum.
            done = (np.abs(da) <= STEP_TOL * (1.0 + np.abs(a0))) & (
                np.abs(db) <= STEP_TOL * (1.0 + np.abs(b0))
            )
            out[rows[active[done]]] = (b0 + db)[done]  # the last step is too small to need a check
            go, da, db = active[~done], da[~done], db[~done]
            t, ll[go] = self._line_search(w[go], a[go], b[go], da, db, ll[go])
            a[go] += t * da
            b[go] += t * db
            # A singular step finds no step length (t is NaN): that row fails (NaN).
            active = go[np.isfinite(t)]
            if active.size == 0:
                break
        return out

    def _newton_step(
        self, w: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        score, info = self._terms(w, a[:, None] + b[:, None] * self.z)
        g0, g1 = score.sum(axis=1), (score * self.z).sum(axis=1)
        h00, h01, h11 = info.sum(axis=1), (info * self.z).sum(axis=1), (info * self.z**2).sum(1)
        det = h00 * h11 - h01 * h01
        with np.errstate(divide="ignore", invalid="ignore"):
            return (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det

    def _line_search(
        self,
        w: NDArray[np.float64],
        a: NDArray[np.float64],
        b: NDArray[np.float64],
        da: NDArray[np.float64],
        db: NDArray[np.float64],
        ll0: NDArray[np.float64],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Step lengths 2**-k (smallest k >= 0) not lowering the log-likelihood ``ll0``, and the
        log-likelihood there; NaN where no step length does (a singular step)."""
        # Near the optimum the change is below rounding: allow a relative 1e-13 dip.
        floor = ll0 - 1e-13 * np.abs(ll0)
        t = np.ones(a.size)
        ll = np.full(a.size, np.nan)
        todo = np.arange(a.size)
        for _ in range(MAX_HALVINGS):
            with np.errstate(invalid="ignore"):
                ll[todo] = self._loglik(
                    w[todo], a[todo] + t[todo] * da[todo], b[todo] + t[todo] * db[todo]
                )
                ok = ll[todo] >= floor[todo]
            todo = todo[~ok]
            if todo.size == 0:
                break
            t[todo] *= 0.5
        t[todo] = np.nan
        return t, ll
