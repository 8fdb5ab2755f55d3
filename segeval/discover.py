"""``segeval.discover``: find the slices of the metadata where a model fails, unnamed in advance.

The slices are every conjunction of up to ``order`` (default 3) of the given metadata columns
(:func:`segeval.slices.build_lattice`), continuous columns binned at fixed cut points given by
the user. Per slice S the estimand is

- without a baseline, ``D_S = AUC(S) − AUC(not S)``: the model ranks a malignant image above a
  benign one less often inside S than outside it (D_S < 0);
- with a baseline, ``Δ_S = AUC_model(S) − AUC_baseline(S)``, the paired ΔAUC inside S: the
  model does worse than the baseline on those images (Δ_S < 0).

Every slice's statistic is drawn on the engine's resamples
(:func:`segeval.engine.evaluate_part` with ``extra=``; whole patients with ``cluster=``) by one
kernel (:class:`segeval._slice_kernels.SliceAUCKernel`), so their joint distribution is known.
Each is studentized by its bootstrap SE, ``z_S = −(stat_S + margin) / SE_S`` (large when the
slice is worse by more than ``margin``), and tested one-sided: with ``method="max-t"`` the
Westfall–Young step-down max-T over the centred draws controls the family-wise error across all
overlapping, nested slices; ``"bh"``/``"by"`` control the false discovery rate (Benjamini–
Hochberg; Benjamini–Yekutieli under any dependence) on the per-slice normal p-values.

A flagged slice is *reported* only if nothing explains it (:func:`segeval.slices.explained_by`):
it must be significantly worse than each flagged ancestor (a slice with a subset of its
conditions), and it gives way to a refinement by one condition that is significantly worse
when no sibling of that refinement is flagged (``site=B`` flagged only because ``site=B &
view=MLO`` fails). Pruning only removes flagged slices, so the reported set keeps the error
control of the flagged set.

Ranking. Reported slices are ranked by the upper bound of the CI of their statistic (most
surely bad first), not by the point estimate nor by the p-value. A small slice's point estimate
is mostly noise, and extreme estimates come from small slices, so sorting on it puts the
smallest slices first; sorting on p favours the largest slices, whose tiny deficits are
precisely estimated. The upper bound is "at least this bad, at the CI level": a small slice's
wide interval pulls its bound towards zero, a large slice needs a real deficit to get a low
one. It needs no prior across slices, unlike empirical-Bayes shrinkage of logit-AUC, whose
prior (one normal over nested, overlapping, strongly dependent slices) is hard to justify here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from segeval._kernels import OneVsRestAUC
from segeval._slice_kernels import SliceAUCKernel
from segeval.engine import evaluate_part
from segeval.io import (
    check_cluster_column,
    check_columns,
    check_predictions,
    json_text,
    runs_as_models,
    to_jsonable,
    write_files,
)
from segeval.resampling import BootstrapOptions, Statistic, summarize
from segeval.segments import Segments, parse_segment_by
from segeval.slices import (
    Lattice,
    benjamini,
    build_lattice,
    explained_by,
    max_t_stepdown,
    one_sided_p,
    studentized,
)
from segeval.validation import InputError, SeedLike, UndefinedMetricWarning, warn

Method = Literal["max-t", "bh", "by"]
METHODS: tuple[str, ...] = ("max-t", "bh", "by")
LABELS = {0: "benign", 1: "malignant"}

__all__ = ["Discovery", "discover", "parse_columns"]


@dataclass(frozen=True, repr=False)
class Discovery:
    """The slices tested, the ones flagged and the ones reported.

    Attributes
    ----------
    slices : DataFrame
        One row per tested slice: ``slice`` (``"site=B & view=MLO"``), ``order``, ``n``,
        ``n_pos``, ``n_neg``, ``prevalence``, ``auc`` and its CI, ``auc_rest`` (the complement)
        and its CI, ``stat`` (the tested estimand, see ``settings["estimand"]``) with
        ``stat_ci_low``/``stat_ci_high`` and ``se``, ``z``, ``p_value`` (one-sided, normal),
        ``p_adjusted`` (by ``settings["method"]``), ``flagged``, ``explained_by`` (a flagged
        ancestor that explains it), ``reported`` and ``rank`` (1 = first reported). With a
        baseline, also ``auc_baseline`` and its CI. Sorted by rank, then by ``stat_ci_high``.
    reported : DataFrame
        The reported slices, ranked, with their leakage within the slice: among images of each
        label, the AUC of the slice against the rest by score (``leakage_benign``,
        ``leakage_malignant``, with CIs; 0.5 = the score does not set the slice apart).
    settings : dict
        Model, baseline, columns with their cut points, order, minimum support, counts of
        candidate / too small / duplicate / tested slices, method, alpha, margin, bootstrap.
    """

    slices: pd.DataFrame
    reported: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready."""
        out: dict[str, Any] = to_jsonable(
            {"settings": self.settings, "reported": self.reported, "slices": self.slices}
        )
        return out

    def write(self, path: str | Path) -> Path:
        """Write the slices table: ``.csv`` (every tested slice) or ``.json`` (everything)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            text = self.slices.to_csv(index=False)
        elif suffix == ".json":
            text = json_text(self.to_dict())
        else:
            raise InputError(f"The slices table is written as .csv or .json; got {str(path)!r}.")
        write_files({path: text})
        return path

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"Discovery(model={s.get('model')!r}, tested={len(self.slices)}, "
            f"flagged={int(self.slices.flagged.sum()) if len(self.slices) else 0}, "
            f"reported={len(self.reported)})"
        )


def parse_columns(columns: str | Sequence[str]) -> list[Any]:
    """Metadata columns, binned ones as ``age:50,60,70`` or ``age=50,60,70``.

    Examples
    --------
    >>> [c.name for c in parse_columns("site,age=0,50,60,120,view")]
    ['site', 'age', 'view']
    """
    if isinstance(columns, str):
        # "name=e1,e2" is read as "name:e1,e2" (the segment_by syntax).
        columns = re.sub(r"(^|,)\s*([^,:=]+?)\s*=", r"\1\2:", columns)
    else:
        columns = [re.sub(r"^\s*([^:=]+?)\s*=", r"\1:", str(c)) for c in columns]
    return parse_segment_by(columns)


def discover(
    predictions: Any,
    columns: str | Sequence[str],
    *,
    model: str | None = None,
    baseline: str | None = None,
    order: int = 3,
    min_support: int = 20,
    method: Method = "max-t",
    alpha: float = 0.05,
    margin: float = 0.0,
    n_boot: int = 1000,
    ci: float = 0.95,
    cluster: str | None = None,
    seed: SeedLike = 0,
    n_jobs: int | None = None,
    leakage: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Discovery:
    """Slices of the metadata where a model's AUC is worse, with simultaneous inference.

    Parameters
    ----------
    predictions : DataFrame
        The predictions contract (``image_id``, ``label``, ``score``, ``model``) with the
        metadata columns.
    columns : str or list of str
        Metadata columns, e.g. ``"site,view,age:0,50,60,70,120"`` (``age=0,50,...`` also
        reads): a number is binned at the given cut points, never at cuts from the data.
    model : str, optional
        The model to audit; may be left out when the predictions hold one model (or two with
        ``baseline``).
    baseline : str, optional
        Test the paired ΔAUC of ``model`` against this model inside each slice instead of the
        slice against its complement.
    order : int
        Largest number of conditions in a slice (1 to 4; default 3).
    min_support : int
        Least number of positives, and of negatives, inside a slice and inside its complement.
    method : {"max-t", "bh", "by"}
        Family-wise error by Westfall–Young step-down max-T (default), or false discovery rate
        by Benjamini–Hochberg / Benjamini–Yekutieli.
    alpha : float
        Level of the family-wise error (or of the false discovery rate).
    margin : float
        Flag a slice only if its statistic is below ``−margin`` ("worse by more than δ").
    n_boot, ci, cluster, seed, n_jobs
        The bootstrap, as in :func:`segeval.evaluate`; ``cluster`` resamples whole patients.
    leakage : bool
        Compute the leakage within each reported slice (on the same resamples).
    progress : callable, optional
        ``progress(k)`` as resamples complete.

    Returns
    -------
    Discovery

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 3000
    >>> site = rng.choice(["A", "B", "C"], n); view = rng.choice(["CC", "MLO"], n)
    >>> y = rng.integers(0, 2, n)
    >>> weak = (site == "B") & (view == "MLO")
    >>> score = 1 / (1 + np.exp(-(np.where(weak, 0.2, 2.0) * (y - 0.5) + rng.normal(0, 1, n))))
    >>> preds = pd.DataFrame({"image_id": np.arange(n), "label": y, "score": score,
    ...                       "site": site, "view": view})
    >>> found = discover(preds, "site,view", order=2, n_boot=200)
    >>> found.reported.slice.tolist()
    ['site=B & view=MLO']
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must lie strictly between 0 and 1; got {alpha!r}.")
    if not 0 <= margin < 1:
        raise InputError(f"margin must lie in [0, 1), an AUC difference; got {margin!r}.")
    parsed = parse_columns(columns)
    preds = check_predictions(predictions)
    check_columns(preds, [c.name for c in parsed], "metadata")
    if cluster:
        check_cluster_column(preds, cluster)
    preds, _ = runs_as_models(preds)
    model, frame, y, scores = _pick(preds, model, baseline)
    lattice = build_lattice(frame, parsed, y, order=order, min_support=min_support)
    options = BootstrapOptions.make(
        n_boot=n_boot, ci=ci, resample="cluster" if cluster else "rows", seed=seed, n_jobs=n_jobs
    )
    clusters = frame[cluster].to_numpy() if cluster else None
    settings: dict[str, Any] = {
        "model": model,
        "baseline": baseline,
        "columns": [
            c.name + (":" + ",".join(f"{e:g}" for e in c.edges) if c.edges else "") for c in parsed
        ],
        "order": order,
        "min_support": min_support,
        "support_rule": f"at least {min_support} positives and {min_support} negatives inside "
        "the slice and inside its complement",
        "n_candidates": lattice.n_candidates,
        "n_too_small": lattice.n_small,
        "n_duplicate": lattice.n_duplicate,
        "n_tested": len(lattice.slices),
        "estimand": "AUC(model, slice) - AUC(baseline, slice)"
        if baseline
        else "AUC(slice) - AUC(rest)",
        "method": method,
        "alpha": alpha,
        "margin": margin,
        "n_boot": n_boot,
        "ci": ci,
        "cluster": cluster,
        "seed": seed if isinstance(seed, int) else repr(seed),
        "n_images": int(y.size),
    }
    if not len(lattice.slices):
        warn(
            f"No slice of {settings['columns']} up to order {order} holds {min_support} "
            "positives and negatives on both sides; nothing to test (lower min_support?).",
            UndefinedMetricWarning,
        )
        empty = lattice.slices.assign(reported=pd.Series(dtype=bool))
        return Discovery(empty, empty, settings)
    slices = _test(lattice, y, scores, options, clusters, method, alpha, margin, progress)
    reported = slices[slices.reported].reset_index(drop=True)
    if leakage and len(reported):
        reported = _with_leakage(reported, lattice, y, scores["model"], options, clusters)
    return Discovery(slices, reported, settings)


def _pick(
    preds: pd.DataFrame, model: str | None, baseline: str | None
) -> tuple[str, pd.DataFrame, NDArray[np.int8], dict[str, NDArray[np.float64]]]:
    """The audited model's rows (sorted by image_id), labels, and its (and the baseline's)
    scores on the same images."""
    models = sorted(preds["model"].unique())
    for name, what in ((model, "model"), (baseline, "baseline")):
        if name is not None and name not in models:
            raise InputError(f"{what}={name!r} is not in the predictions; models: {models}.")
    if model is None:
        others = [m for m in models if m != baseline]
        if len(others) != 1:
            raise InputError(
                f"The predictions hold {len(others)} models other than the baseline "
                f"({', '.join(others)}); choose one with model=."
            )
        model = others[0]
    if baseline == model:
        raise InputError(f"baseline and model are the same model, {model!r}.")
    per_model = {
        m: g.sort_values("image_id", kind="stable").reset_index(drop=True)
        for m, g in preds.groupby("model")
        if m in (model, baseline)
    }
    frame = per_model[model]
    y = frame["label"].to_numpy(np.int8)
    if y.min() == y.max():
        raise InputError("The predictions hold one class only; AUC needs both.")
    scores = {"model": frame["score"].to_numpy(np.float64)}
    if baseline is not None:
        if not np.array_equal(per_model[baseline]["label"].to_numpy(np.int8), y):
            raise InputError(
                f"Models {model!r} and {baseline!r} give different labels to the same image_id."
            )
        scores["baseline"] = per_model[baseline]["score"].to_numpy(np.float64)
    return str(model), frame, y, scores


def _test(
    lattice: Lattice,
    y: NDArray[np.int8],
    scores: dict[str, NDArray[np.float64]],
    options: BootstrapOptions,
    clusters: NDArray[Any] | None,
    method: str,
    alpha: float,
    margin: float,
    progress: Callable[[int], None] | None,
) -> pd.DataFrame:
    """Every slice's AUCs on the engine's resamples, its test and the minimal description."""
    kernels: dict[Hashable, Statistic] = {
        name: SliceAUCKernel(y, s, lattice.families) for name, s in scores.items()
    }
    part = evaluate_part(
        y, {}, options=options, metrics=(), extra=kernels, clusters=clusters, progress=progress
    )
    assert part.extra is not None
    k = len(lattice.slices)
    est, draws = part.extra.estimate("model"), part.extra.of("model")
    table = lattice.slices.copy()
    _add(table, "auc", est[:k], draws[:, :k], options.ci)
    _add(table, "auc_rest", est[k:], draws[:, k:], options.ci)
    if "baseline" in scores:
        b_est, b_draws = part.extra.estimate("baseline"), part.extra.of("baseline")
        _add(table, "auc_baseline", b_est[:k], b_draws[:, :k], options.ci)
        stat, stat_draws = est[:k] - b_est[:k], draws[:, :k] - b_draws[:, :k]
    else:
        stat, stat_draws = est[:k] - est[k:], draws[:, :k] - draws[:, k:]
    _add(table, "stat", stat, stat_draws, options.ci)
    se, z, z_null = studentized(stat, stat_draws, margin)
    p = one_sided_p(z)
    adjusted = (
        max_t_stepdown(z, z_null) if method == "max-t" else benjamini(p, dependent=method == "by")
    )
    flagged = np.nan_to_num(adjusted, nan=1.0) < alpha
    explainer = explained_by(flagged, lattice, stat, stat_draws, alpha=alpha)
    names = table.slice.to_numpy()
    table["se"], table["z"], table["p_value"], table["p_adjusted"] = se, z, p, adjusted
    table["flagged"] = flagged
    table["explained_by"] = [None if e is None else str(names[e]) for e in explainer]
    table["reported"] = flagged & np.array([e is None for e in explainer], dtype=bool)
    table = table.sort_values(["reported", "stat_ci_high"], ascending=[False, True], kind="stable")
    table["rank"] = np.where(table.reported, np.cumsum(table.reported), 0)
    return table.reset_index(drop=True)


def _add(
    table: pd.DataFrame, name: str, est: NDArray[np.float64], draws: NDArray[np.float64], ci: float
) -> None:
    """Columns ``name``, ``name_ci_low``, ``name_ci_high``: estimate and percentile CI."""
    tail = (1 - ci) / 2
    table[name] = est
    with np.errstate(invalid="ignore"):
        bounds = (
            np.nanquantile(np.where(np.isfinite(draws), draws, np.nan), [tail, 1 - tail], axis=0)
            if draws.shape[0] > 1
            else np.full((2, est.size), np.nan)
        )
    table[f"{name}_ci_low"], table[f"{name}_ci_high"] = bounds[0], bounds[1]


def _with_leakage(
    reported: pd.DataFrame,
    lattice: Lattice,
    y: NDArray[np.int8],
    score: NDArray[np.float64],
    options: BootstrapOptions,
    clusters: NDArray[Any] | None,
) -> pd.DataFrame:
    """Each reported slice's leakage per label: slice vs rest by score among that label's
    images, drawn on the same resamples (same part, same seed) as the slices' AUCs."""
    index = {name: i for i, name in enumerate(lattice.slices.slice)}
    kernels: dict[Hashable, Statistic] = {}
    for name in reported.slice:
        inside = lattice.member(index[name]).astype(np.intp)
        two = Segments(inside, ("rest", "slice"), (("rest",), ("slice",)), ("slice",))
        for label in LABELS:
            kernels[name, label] = OneVsRestAUC(y, score, two, label)
    part = evaluate_part(y, {}, options=options, metrics=(), extra=kernels, clusters=clusters)
    assert part.extra is not None
    out = reported.copy()
    for label, word in LABELS.items():
        results = [
            summarize(
                part.extra.estimate((name, label))[1],
                part.extra.of((name, label))[:, 1],
                options.ci,
                what="Leakage within the slice",
            )
            for name in reported.slice
        ]
        out[f"leakage_{word}"] = [r.estimate for r in results]
        out[f"leakage_{word}_ci_low"] = [r.ci_low for r in results]
        out[f"leakage_{word}_ci_high"] = [r.ci_high for r in results]
    return out
