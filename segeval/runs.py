"""ΔAUC between two training recipes, each trained with several seeds (runs).

A single run's bootstrap CI covers the test images only: train the same recipe with another seed
and the AUC moves, often by more than that CI suggests. When each model comes as several runs
scored on the same test images, the comparison is between *recipes*, and its CI must cover both
sources of variation. The two-level bootstrap does that: each resample draws the test images (as
:func:`segeval.bootstrap_delta_auc` does, the same resample for every run) and, independently,
draws runs with replacement within each model; the resampled ΔAUC is the mean AUC of the drawn
runs of b minus that of a. With one run per model there is nothing to draw at the second level
and the result equals :func:`segeval.bootstrap_delta_auc` exactly.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from segeval._kernels import AUCKernel
from segeval.resampling import (
    BootstrapOptions,
    Resample,
    Resampler,
    Statistic,
    bootstrap_distribution,
    summarize,
)
from segeval.significance import p_value_from_bootstrap, p_value_from_ci, verdict
from segeval.validation import (
    InputError,
    SeedLike,
    as_seed_sequence,
    check_labels,
    check_level,
    check_positive_int,
    check_scores,
    one_class_reason,
    warn_undefined,
)

# Child key of the run draws: far above any resample index (image draws use keys 0 … n_boot−1).
RUNS_SPAWN_KEY = 2**31


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


def _check_runs(name: str, scores: ArrayLike, n: int) -> NDArray[np.float64]:
    try:
        arr = np.asarray(scores, dtype=object if np.ndim(scores) == 0 else None)
    except ValueError as exc:  # runs of different lengths
        lengths = ", ".join(str(np.size(run)) for run in scores)  # type: ignore[union-attr]
        raise InputError(
            f"{name} must hold one score per image in every run; got runs of {lengths} scores."
        ) from exc
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise InputError(
            f"{name} must have shape (runs, images) or (images,); got an array of shape "
            f"{np.shape(scores)}."
        )
    if arr.shape[1] != n:
        raise InputError(f"{name} scores {arr.shape[1]} images per run but y_true has {n}.")
    return np.stack([check_scores(row, name) for row in arr])


def bootstrap_delta_auc_runs(
    y_true: ArrayLike,
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    *,
    n_boot: int = 2000,
    ci: float = 0.95,
    resample: Resample = "rows",
    clusters: ArrayLike | None = None,
    seed: SeedLike = 0,
    n_jobs: int | None = None,
    alpha: float = 0.05,
) -> RunsDeltaAUCResult:
    """Two-level bootstrap of ΔAUC between two models given as several runs each.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0/1 labels of the test images.
    scores_a, scores_b : array-like of shape (runs, n) or (n,)
        Each run's scores of the same images, in the same order (a: the baseline).
    n_boot, ci, resample, clusters, seed, n_jobs, alpha
        As in :func:`segeval.bootstrap_delta_auc`.

    Returns
    -------
    RunsDeltaAUCResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 300)
    >>> a = [y + rng.normal(0, 1.0, 300) for _ in range(3)]
    >>> b = [y + rng.normal(0, 0.8, 300) for _ in range(3)]
    >>> r = bootstrap_delta_auc_runs(y, np.clip(a, -3, 3) / 6 + .5, np.clip(b, -3, 3) / 6 + .5,
    ...                              n_boot=200)
    >>> r.delta > 0, len(r.runs_auc_b)
    (True, 3)
    """
    y = check_labels(y_true)
    sa = _check_runs("scores_a", scores_a, y.size)
    sb = _check_runs("scores_b", scores_b, y.size)
    ci = check_level(ci)
    n_boot = check_positive_int(n_boot, "n_boot")
    resampler = Resampler(y, resample=resample, clusters=clusters)
    ra, rb = sa.shape[0], sb.shape[0]
    reason = one_class_reason(y, "ROC AUC")
    if reason:
        nan = warn_undefined(reason)
        return RunsDeltaAUCResult(
            nan, nan, nan, nan, nan, nan, verdict(nan, nan, nan), nan, nan,
            (nan,) * ra, (nan,) * rb, 0, 0, ci,
        )  # fmt: skip
    ss = as_seed_sequence(seed)
    # Beside the image resamples' children 0 … n_boot−1, never among them; derived from the
    # seed's fixed identity, so the same seed object gives the same run draws every time.
    run_ss = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, RUNS_SPAWN_KEY))
    # Every run's AUC is a named statistic of the same image resamples (as in the engine).
    kernels: dict[Hashable, Statistic] = {
        ("auc", m, r): AUCKernel(y, s)
        for m, runs in (("a", sa), ("b", sb))
        for r, s in enumerate(runs)
    }
    draws = bootstrap_distribution(kernels, resampler, n_boot=n_boot, seed=ss, n_jobs=n_jobs)
    aucs_a = np.array([draws.estimate(("auc", "a", r))[0] for r in range(ra)])
    aucs_b = np.array([draws.estimate(("auc", "b", r))[0] for r in range(rb)])
    auc_a = np.column_stack([draws.of(("auc", "a", r))[:, 0] for r in range(ra)])
    auc_b = np.column_stack([draws.of(("auc", "b", r))[:, 0] for r in range(rb)])
    estimate = float(aucs_b.mean() - aucs_a.mean())
    images_only = auc_b.mean(axis=1) - auc_a.mean(axis=1)
    if ra == 1 and rb == 1:
        two_level = images_only
    else:
        rng = np.random.default_rng(run_ss)
        pick_a = rng.integers(0, ra, (n_boot, ra))
        pick_b = rng.integers(0, rb, (n_boot, rb))
        rows = np.arange(n_boot)[:, np.newaxis]
        two_level = auc_b[rows, pick_b].mean(axis=1) - auc_a[rows, pick_a].mean(axis=1)
    delta = summarize(estimate, two_level, ci, what="ΔAUC")
    images = summarize(estimate, images_only, ci, what="ΔAUC")
    p = p_value_from_ci(delta.estimate, delta.ci_low, delta.ci_high, level=ci)
    return RunsDeltaAUCResult(
        delta=delta.estimate,
        ci_low=delta.ci_low,
        ci_high=delta.ci_high,
        se=delta.se,
        p_value=p,
        p_value_bootstrap=p_value_from_bootstrap(delta.estimate, delta.se),
        verdict=verdict(delta.ci_low, delta.ci_high, p, alpha=alpha),
        images_ci_low=images.ci_low,
        images_ci_high=images.ci_high,
        runs_auc_a=tuple(float(v) for v in aucs_a),
        runs_auc_b=tuple(float(v) for v in aucs_b),
        n_boot_used=delta.n_boot_used,
        n_boot_undefined=delta.n_boot_undefined,
        ci=ci,
    )


RECIPE_COLUMNS = [
    "model",
    "baseline",
    "segment",
    "n_runs",
    "n_runs_baseline",
    "auc_baseline",
    "auc",
    "delta_auc",
    "delta_ci_low",
    "delta_ci_high",
    "images_ci_low",
    "images_ci_high",
    "p_value",
    "p_value_bootstrap",
    "verdict",
]


def compare_recipes(
    y: NDArray[np.int8],
    scores: Mapping[str, NDArray[np.float64]],
    recipes: Mapping[str, Sequence[tuple[str, str]]],
    baselines: Mapping[str, str],
    parts: Sequence[tuple[str, NDArray[np.intp]]],
    *,
    options: BootstrapOptions,
    clusters: NDArray[Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every recipe against the baseline's recipe, on each part, over images and seeds.

    ``scores`` maps each evaluated model (one run) to its scores; ``recipes`` maps a recipe to
    its (run, model) pairs; ``baselines`` maps a part's name to the baseline *recipe* there;
    ``parts`` are (name, row indices). Returns the comparisons (columns :data:`RECIPE_COLUMNS`)
    and each run's ΔAUC against the mean AUC of the baseline's runs.
    """
    rows, per_run = [], []
    for part, idx in parts:
        base = baselines.get(part)
        if base is None:
            continue
        base_scores = np.stack([scores[m][idx] for _, m in recipes[base]])
        for recipe, runs in recipes.items():
            if recipe == base:
                continue
            r = bootstrap_delta_auc_runs(
                y[idx],
                base_scores,
                np.stack([scores[m][idx] for _, m in runs]),
                clusters=None if clusters is None else clusters[idx],
                alpha=options.alpha,
                **options.keywords(),
            )
            base_mean = float(np.mean(r.runs_auc_a))
            rows.append(
                (recipe, base, part, len(runs), len(recipes[base]), base_mean,
                 float(np.mean(r.runs_auc_b)), r.delta, r.ci_low, r.ci_high, r.images_ci_low,
                 r.images_ci_high, r.p_value, r.p_value_bootstrap, r.verdict)
            )  # fmt: skip
            per_run += [
                (recipe, run, part, auc, auc - base_mean)
                for (run, _), auc in zip(runs, r.runs_auc_b, strict=True)
            ]
    return (
        pd.DataFrame(rows, columns=RECIPE_COLUMNS),
        pd.DataFrame(per_run, columns=["model", "run", "segment", "auc", "delta_auc"]),
    )
