"""ΔAUC between two training recipes, each trained with several seeds (runs).

A single run's bootstrap CI covers the test images only: train the same recipe with another seed
and the AUC moves, often by more than that CI suggests. When each model comes as several runs
scored on the same test images, the comparison is between *recipes*, and its CI must cover both
sources of variation. Its variance has two parts: the images (the bootstrap of the test images,
the same resample for every run, as :func:`segeval.bootstrap_delta_auc` draws them) and the
seeds (each recipe's between-seed variance of a run's AUC, by the method of moments on the crossed
run x image design, over its number of runs); the interval is Δ ± t·SE (see
:func:`segeval.engine._runs`). It covers 93–97% of the time at a nominal 95% with 3, 5 or 10 runs,
whether the seeds or the images dominate (``bench/coverage_runs.py``). With one run per model
there is no seed variation to estimate and the result equals :func:`segeval.bootstrap_delta_auc`
exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from segeval.engine import PartResult, Recipes, RunsDeltaAUCResult, evaluate_part
from segeval.registry import AUC
from segeval.resampling import BootstrapOptions, Resample, Resampler
from segeval.validation import InputError, SeedLike, check_labels, check_scores

__all__ = ["RECIPE_COLUMNS", "RunsDeltaAUCResult", "bootstrap_delta_auc_runs", "recipe_rows"]


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
    """ΔAUC between two models given as several runs each, with a CI over images and seeds.

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
    options = BootstrapOptions.make(
        n_boot=n_boot, ci=ci, resample=resample, seed=seed, n_jobs=n_jobs, alpha=alpha
    )
    Resampler(y, resample=resample, clusters=clusters)  # validates the clusters up front
    # Every run is a model of the part; its AUC draws are shared with the other runs.
    runs = {"a": [f"a{r}" for r in range(len(sa))], "b": [f"b{r}" for r in range(len(sb))]}
    scores = dict(zip([*runs["a"], *runs["b"]], [*sa, *sb], strict=True))
    part = evaluate_part(
        y,
        scores,
        options=options,
        metrics=(AUC,),
        recipes=Recipes(runs, baseline="a"),
        clusters=None if clusters is None else np.asarray(clusters),
        name=None,
    )
    return part.runs["b"]


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


def recipe_rows(
    part: PartResult, recipes: Recipes, names: Mapping[str, Sequence[str]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows of the recipe comparisons of one part (columns :data:`RECIPE_COLUMNS`) and each
    run's ΔAUC against the mean AUC of the baseline's runs (model, run, segment, auc,
    delta_auc); ``names`` maps a recipe to its runs' names."""
    rows, per_run = [], []
    base = recipes.baseline
    for recipe, r in part.runs.items():
        base_mean = float(np.mean(r.runs_auc_a))
        rows.append(
            (recipe, base, part.name, len(recipes.runs[recipe]), len(recipes.runs[base]),
             base_mean, float(np.mean(r.runs_auc_b)), r.delta, r.ci_low, r.ci_high,
             r.images_ci_low, r.images_ci_high, r.p_value, r.p_value_bootstrap, r.verdict)
        )  # fmt: skip
        per_run += [
            (recipe, run, part.name, auc, auc - base_mean)
            for run, auc in zip(names[recipe], r.runs_auc_b, strict=True)
        ]
    return rows, per_run
