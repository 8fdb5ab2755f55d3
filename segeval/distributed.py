"""Evaluation of a Dask DataFrame: the numbers of ``resample="poisson"`` in memory, bit for bit.

Predictions too large for one process are evaluated where they lie, on a Dask cluster (an
embedded ``LocalCluster`` by default, or any scheduler), in three steps:

- **map**: each partition computes integer-weighted sums per resample, with the Poisson counts of
  its own rows (:func:`segeval.resampling.poisson_counts`: a function of (hash of the image id,
  or of the patient id with ``cluster=``, resample, seed), so no partition needs another's);
- **merge**: the driver adds the partitions' sums; they are exact (integers, and log losses
  rounded to 2^-24, see :class:`segeval._kernels.WLLKernel`), hence the same in any order;
- **finalize**: the same last divisions as the in-memory kernels, then the engine's summaries
  (:func:`segeval.engine.part_from_draws`): percentile CIs, ΔAUC, p-values, verdicts.

*AUC across partitions.* AUC needs, for each positive, the weight of the negatives scored below
it, across partitions. Each model's rows are range-partitioned by score (``set_index``: equal
scores never straddle two partitions). One map pass returns, per partition and per group (the
whole partition and each segment in it), per resample: the classes' weights, the log-loss sums
and the (negative, positive) pairs ordered inside the partition. The driver adds, for each
group, the exclusive prefix of the negatives' weight over the partitions below times the
positives' weight here: the pairs across partitions. Communication: partitions x groups x
resamples x 5 numbers; no shuffle by segment, so no segment needs to fit in one worker.
Exactness needs twice the pair count (positives' weight x negatives' weight) below 2^53: up
to about 1.3 x 10^8 images whatever the prevalence, more when the disease is rare.

WLL and AUC (and ΔAUC, and each metric's paired difference) are offered here: their sums merge
exactly; the registry's other metrics are not yet. Dask is imported only when this module
is used: ``import segeval`` works without it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from segeval import frames
from segeval._kernels import WLLKernel, _undefined_where, wll_value
from segeval.audit import audit_counts
from segeval.engine import PartResult, part_from_draws
from segeval.evaluation import Evaluation, _provenance
from segeval.frames import HIST_BINS
from segeval.metrics import DEFAULT_EPS
from segeval.registry import AUC, WLL, MetricSpec, resolve_metrics
from segeval.resampling import (
    BATCH_CELLS,
    BootstrapOptions,
    Draws,
    poisson_counts,
    poisson_seed,
    unit_hashes,
)
from segeval.scorecard import scorecard
from segeval.segments import GLOBAL, segment_keys
from segeval.table import table_columns, table_row
from segeval.validation import InputError, SeedLike

REQUIRED = ("image_id", "label", "score")


def is_dask_frame(obj: Any) -> bool:
    """Whether ``obj`` is a Dask DataFrame, without importing Dask when it is not loaded."""
    import sys

    if "dask" not in sys.modules and "dask.dataframe" not in sys.modules:
        return False
    import dask.dataframe as dd

    return isinstance(obj, dd.DataFrame)


def evaluate_dask(
    predictions: Any,
    *,
    segment_by: str | Sequence[str] | None,
    baseline: frames.BaselineLike = None,
    cluster: str | None = None,
    metrics: str | Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: SeedLike = 0,
    ci: float = 0.95,
    eps: float = DEFAULT_EPS,
    verdict_rule: str = "paper",
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate a Dask DataFrame of predictions with Poisson resampling, on the current client.

    Parameters are those of :func:`segeval.evaluate` (``resample`` is ``"poisson"``; metrics
    ``wll`` and ``auc``). The computation runs on the active ``distributed.Client`` (see
    :func:`client_for`), or Dask's default scheduler. The numbers equal those of
    ``segeval.evaluate(predictions.compute(), resample="poisson", ...)`` bit for bit, for any
    partitioning and any number of workers.
    """
    options = BootstrapOptions.make(
        n_boot=n_boot, ci=ci, resample="poisson", seed=seed, verdict_rule=verdict_rule
    )
    specs = _check_metrics(metrics)
    ddf = _check_frame(predictions, segment_by, cluster)
    models = _check_models(ddf)
    default, per_segment = frames.parse_baseline(baseline)
    for m in [default, *per_segment.values()]:
        if m is not None and m not in models:
            raise InputError(f"baseline {m!r} is not a model of the predictions; models: {models}.")
    done = [0]
    total = n_boot * len(models)

    def step(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(k, total)

    unit = cluster or "image_id"
    baselines = {GLOBAL: default, **per_segment}
    parts, hists = _parts(ddf, models, unit, segment_by, specs, baselines, options, eps, step)
    return _evaluation(parts, hists, models, specs, baselines, options, seed, segment_by, cluster)


def _check_metrics(metrics: str | Sequence[str] | None) -> tuple[MetricSpec, ...]:
    specs = resolve_metrics(metrics)
    other = [s.name for s in specs if s not in (WLL, AUC)]
    if other:
        raise InputError(
            f"On Dask the metrics are wll and auc (their whole-set sums merge exactly); got "
            f"{', '.join(other)}."
        )
    return specs if AUC in specs else (*specs, AUC)


def _check_frame(ddf: Any, segment_by: str | Sequence[str] | None, cluster: str | None) -> Any:
    """The columns every partition needs; ``model`` added where absent; no ``run`` column."""
    columns = list(ddf.columns)
    if "model" not in columns:
        ddf = ddf.assign(model="model")
    needed = [*REQUIRED, *(frames.segment_columns(segment_by) if segment_by else [])]
    needed += [cluster] if cluster else []
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(
            f"The predictions lack the column(s) {', '.join(missing)}; every partition needs "
            f"{', '.join(needed)}."
        )
    if "run" in columns:
        raise InputError("On Dask, predictions with a run column are not supported yet.")
    return ddf


def _check_models(ddf: Any) -> tuple[str, ...]:
    """Models, after the checks that need the whole frame: labels, scores, unique and paired
    images (one pass of per-partition summaries, one count of unique (model, image_id))."""
    from dask.base import compute

    summary = ddf.map_partitions(_partition_summary, meta=_SUMMARY_META)
    per_model = ddf.groupby("model").image_id.nunique()
    summaries, unique = compute(summary, per_model)
    bad = summaries[summaries.problem != ""]
    if len(bad):
        raise InputError(str(bad.problem.iloc[0]))
    counts = summaries.groupby("model")["rows"].sum()
    models = tuple(sorted(str(m) for m in counts.index))
    for m in models:
        if int(unique[m]) != int(counts[m]):
            raise InputError(
                f"{int(counts[m] - unique[m])} duplicate (image_id, model) row(s) for model "
                f"{m!r} (across partitions or files); each image is scored once per model."
            )
    images = {int(unique[m]) for m in models}
    if len(images) > 1:
        listed = ", ".join(f"{m} {int(unique[m])}" for m in models)
        raise InputError(f"The models are scored on different numbers of images ({listed}).")
    # Sums of the images' id hashes (over all images, and over the malignant ones) tell, up to
    # a collision of odds ~2^-31, whether the models saw the same images with the same labels.
    ids = summaries.groupby("model")[["ids", "positive_ids"]].sum()
    for m in models[1:]:
        if ids.loc[m, "ids"] != ids.loc[models[0], "ids"]:
            raise InputError(f"Models {models[0]!r} and {m!r} are scored on different images.")
        if ids.loc[m, "positive_ids"] != ids.loc[models[0], "positive_ids"]:
            raise InputError(
                f"Models {models[0]!r} and {m!r} give different labels to the same image_id."
            )
    pos = int(summaries["positives"].sum())
    if pos == 0 or pos == int(counts.sum()):
        raise InputError("The predictions hold one class only; AUC and WLL need both classes.")
    return models


_SUMMARY_META = pd.DataFrame(
    {
        "model": pd.Series([], dtype=object),
        "rows": pd.Series([], dtype=np.int64),
        "positives": pd.Series([], dtype=np.int64),
        "ids": pd.Series([], dtype=np.int64),
        "positive_ids": pd.Series([], dtype=np.int64),
        "problem": pd.Series([], dtype=object),
    }
)


def _partition_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows and positives per model of one partition, and the first problem of its values."""
    problem = ""
    label = pd.to_numeric(frame["label"], errors="coerce")
    score = pd.to_numeric(frame["score"], errors="coerce")
    if frame["image_id"].isna().any():
        problem = "A partition has rows without an image_id; every row needs one."
    elif not label.isin([0, 1]).all():
        value = _plain(frame["label"][~label.isin([0, 1])].iloc[0])
        problem = f"Column 'label' must hold 0 or 1; got {value!r}."
    elif not (np.isfinite(score) & (score >= 0) & (score <= 1)).all():
        value = _plain(frame["score"][~(np.isfinite(score) & (score >= 0) & (score <= 1))].iloc[0])
        problem = f"Column 'score' must hold probabilities in [0, 1]; got {value!r}."
    hashed = (unit_hashes(frame["image_id"].to_numpy()) >> np.uint64(33)).astype(np.int64)
    positive = (label == 1).to_numpy()
    grouped = frame.assign(_pos=positive, _id=hashed, _pos_id=hashed * positive).groupby(
        "model", sort=True
    )
    out = pd.DataFrame(
        {
            "model": grouped.size().index.astype(str).to_numpy(dtype=object),
            "rows": grouped.size().to_numpy(np.int64),
            "positives": grouped["_pos"].sum().to_numpy(np.int64),
            "ids": grouped["_id"].sum().to_numpy(np.int64),  # 31-bit hashes: no overflow
            "positive_ids": grouped["_pos_id"].sum().to_numpy(np.int64),
        }
    )
    out["problem"] = np.array([problem] * len(out), dtype=object)
    if not len(out) and problem:
        out = pd.DataFrame(
            {"model": ["?"], "rows": [0], "positives": [0], "ids": [0], "positive_ids": [0],
             "problem": [problem]}
        )  # fmt: skip
    return out.astype({"model": object, "problem": object})


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``2``, not ``np.int8(2)``)."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------- whole set: map / merge


def _weights(hashes: NDArray[np.uint64], seed: int, block: range) -> NDArray[np.float64]:
    """Counts of a block of resamples; resample -1 is the full data (weights one)."""
    if block.start < 0:
        rest = range(0, block.stop)
        ones = np.ones((1, hashes.size))
        return np.vstack([ones, poisson_counts(hashes, seed, rest)]) if block.stop else ones
    return poisson_counts(hashes, seed, block)


def _blocks(n_rows: int, n_boot: int) -> list[range]:
    step = max(1, BATCH_CELLS // max(n_rows, 1))
    return [range(s, min(s + step, n_boot)) for s in range(-1, n_boot, step)]


def _prepared(frame: pd.DataFrame, unit: str) -> tuple[NDArray[Any], ...]:
    y = pd.to_numeric(frame["label"]).to_numpy(np.int8)
    s = pd.to_numeric(frame["score"]).to_numpy(np.float64)
    return y, s, unit_hashes(frame[unit].to_numpy())


SUMS = ("w_pos", "w_neg", "loss_pos", "loss_neg", "pairs")  # a group's sums per resample


@dataclass(frozen=True)
class _Layout:
    """The rows of a partition ordered by group, then score, so that each group (the whole
    partition; or each segment) is one run of rows: one pass over a weight matrix in this order
    gives every group's :data:`SUMS`.

    AUC needs the negatives' cumulative weight only where a positive's score falls (``lo``:
    before its ties, ``hi``: after them) and where a group starts: the row ranges between these
    ``cuts`` are summed (``np.add.reduceat``) and only those few sums accumulated."""

    order: NDArray[np.intp]  # the partition's rows in layout order
    is_neg: NDArray[np.float64]
    loss_pos: NDArray[np.float64]  # zero on negatives
    loss_neg: NDArray[np.float64]  # zero on positives
    starts: NDArray[np.intp]  # group g is layout rows starts[g]:starts[g + 1]
    pos: NDArray[np.intp]  # layout rows of the positives, by group then score
    pos_starts: NDArray[np.intp]  # group g's positives are pos[pos_starts[g]:pos_starts[g + 1]]
    cuts: NDArray[np.intp]  # increasing layout rows, 0 first, where a cumulative is read
    lo: NDArray[np.intp]  # per positive, the index in cuts of its group's first row >= it ...
    hi: NDArray[np.intp]  # ... and of the first row > it
    first: NDArray[np.intp]  # per group, the index in cuts of its first row
    after: NDArray[np.intp]  # ... and of the row after its last

    @classmethod
    def of(
        cls, codes: NDArray[np.intp], n_groups: int, y: NDArray[np.int8], s: NDArray[np.float64],
        wll: WLLKernel,
    ) -> _Layout:  # fmt: skip
        order = np.lexsort((s, codes))
        c, ys, ss = codes[order], y[order], s[order]
        groups = np.arange(n_groups + 1)
        starts = np.searchsorted(c, groups)
        pos = np.flatnonzero(ys == 1)
        pos_starts = np.searchsorted(c[pos], groups)
        lo, hi = np.empty_like(pos), np.empty_like(pos)
        for g in range(n_groups):
            rows, mine = slice(starts[g], starts[g + 1]), slice(pos_starts[g], pos_starts[g + 1])
            lo[mine] = starts[g] + np.searchsorted(ss[rows], ss[pos[mine]], side="left")
            hi[mine] = starts[g] + np.searchsorted(ss[rows], ss[pos[mine]], side="right")
        cuts = np.unique(np.concatenate([starts, lo, hi]))
        return cls(
            order, (ys == 0).astype(np.float64), wll.loss_pos[order], wll.loss_neg[order],
            starts, pos, pos_starts, cuts, np.searchsorted(cuts, lo), np.searchsorted(cuts, hi),
            np.searchsorted(cuts, starts[:-1]), np.searchsorted(cuts, starts[1:]),
        )  # fmt: skip

    def sums(self, w: NDArray[np.float64]) -> NDArray[np.float64]:
        """(groups, resamples, 5): :data:`SUMS` under ``w`` (resamples x rows, layout order).
        Every term is an integer, a half-integer or a multiple of 2^-24 below 2^53, so every
        sum and difference is exact, in any order: the in-memory kernels' numbers."""
        r = w.shape[0]
        cs = np.zeros((r, self.cuts.size))  # the negatives' weight before each cut
        np.cumsum(np.add.reduceat(w * self.is_neg, self.cuts[:-1], axis=1), axis=1, out=cs[:, 1:])
        wp = np.take(w, self.pos, axis=1)
        cp = np.zeros((r, self.pos.size + 1))  # cumulative positives' weight, and pair counts
        ct = np.zeros((r, self.pos.size + 1))
        np.cumsum(wp, axis=1, out=cp[:, 1:])
        np.cumsum(wp * (cs[:, self.lo] + cs[:, self.hi]), axis=1, out=ct[:, 1:])
        base = cs[:, self.first]  # the negatives of the groups before
        w_pos = cp[:, self.pos_starts[1:]] - cp[:, self.pos_starts[:-1]]
        twice_pairs = ct[:, self.pos_starts[1:]] - ct[:, self.pos_starts[:-1]]
        out = np.empty((self.first.size, r, len(SUMS)))
        out[:, :, 0] = w_pos.T
        out[:, :, 1] = (cs[:, self.after] - base).T
        for g, (a, b) in enumerate(zip(self.starts[:-1], self.starts[1:], strict=True)):
            out[g, :, 2] = np.einsum("ij,j->i", w[:, a:b], self.loss_pos[a:b])
            out[g, :, 3] = np.einsum("ij,j->i", w[:, a:b], self.loss_neg[a:b])
        out[:, :, 4] = (twice_pairs / 2 - base * w_pos).T
        return out


def _partition_sums(
    frame: pd.DataFrame,
    unit: str,
    segment_by: str | Sequence[str] | None,
    seed: int,
    n_boot: int,
    eps: float,
) -> dict[str, _Found]:
    """Map: for the whole partition and each segment in it, the segment's values and its
    :data:`SUMS` per resample (row 0: the full data), shape (n_boot + 1, 5). The pairs count
    only the (negative, positive) pairs inside this partition; the merge adds the rest."""
    y, s, hashes = _prepared(frame, unit)
    if not y.size:
        return {}
    wll = WLLKernel(y, s, eps, exact=True)
    names: list[str] = [GLOBAL]
    values: list[tuple[Any, ...]] = [()]
    whole = _Layout.of(np.zeros(y.size, np.intp), 1, y, s, wll)
    layouts: list[tuple[_Layout, NDArray[np.intp] | None]] = [(whole, None)]  # and each
    # layout's rows' places in the whole set's layout
    if segment_by is not None:
        seg = segment_keys(frame, segment_by)
        names += seg.names
        values += seg.values
        by_segment = _Layout.of(seg.codes, len(seg.names), y, s, wll)
        place = np.empty_like(whole.order)
        place[whole.order] = np.arange(y.size)
        layouts.append((by_segment, place[by_segment.order]))
    groups = np.zeros(y.size, np.intp) if segment_by is None else seg.codes
    counts = _histograms(y, s, groups, len(names) - 1)
    out = np.zeros((len(names), n_boot + 1, len(SUMS)))
    hashes = hashes[whole.order]
    for block in _blocks(y.size, n_boot):
        at = slice(block.start + 1, block.stop + 1)
        w = _weights(hashes, seed, block)  # drawn once, in the whole set's layout
        k = 0
        for layout, rows in layouts:
            table = layout.sums(w if rows is None else np.take(w, rows, axis=1))
            out[k : k + len(table), at] = table
            k += len(table)
    return {
        name: _Found(v, out[k], *(c[k] for c in counts))
        for k, (name, v) in enumerate(zip(names, values, strict=True))
    }


@dataclass(frozen=True)
class _Found:
    """What the map returns for one group of one partition."""

    values: tuple[Any, ...]  # the segment's values (its order among segments)
    sums: NDArray[np.float64]  # (n_boot + 1, 5): SUMS per resample, row 0 the full data
    hist: NDArray[np.int64]  # (2, HIST_BINS): scores per label, the report's histograms
    fine: NDArray[np.int64]  # (2, ROC_BINS): the same on finer bins, for the ROC figure


ROC_BINS = 1000  # ROC curves are drawn from score histograms of this many bins


def _histograms(
    y: NDArray[np.int8], s: NDArray[np.float64], codes: NDArray[np.intp], n_segments: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Counts of scores per group (0: the whole partition; 1 + k: segment k) and label, on
    the report's HIST_BINS bins and on ROC_BINS bins of [0, 1] (``np.histogram``'s binning)."""
    out = []
    for bins in (HIST_BINS, ROC_BINS):
        edges = np.linspace(0, 1, bins + 1)
        counts = np.zeros((n_segments + 1, 2, bins), np.int64)
        for label in (0, 1):
            mine = y == label
            counts[0, label] = np.histogram(s[mine], edges)[0]
            for k in range(n_segments):
                counts[k + 1, label] = np.histogram(s[mine & (codes == k)], edges)[0]
        out.append(counts)
    return out[0], out[1]


def _merged(per_partition: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    """Merge: one group's sums over the partitions of one model, in score order. A positive in
    partition p also outranks every negative of the partitions below p: the exclusive prefix of
    the negatives' weight times p's positive weight, added to p's own pairs (exact integers)."""
    stacked = np.stack(per_partition)  # (partitions, n_boot + 1, 5)
    w_neg = stacked[:, :, 1]
    below = np.cumsum(w_neg, axis=0) - w_neg
    total = stacked.sum(axis=0)
    total[:, 4] += (below * stacked[:, :, 0]).sum(axis=0)
    return np.asarray(total, dtype=np.float64)


def _parts(
    ddf: Any,
    models: tuple[str, ...],
    unit: str,
    segment_by: str | Sequence[str] | None,
    specs: tuple[MetricSpec, ...],
    baselines: dict[str, str | None],
    options: BootstrapOptions,
    eps: float,
    step: Callable[[int], None],
) -> tuple[list[PartResult], dict[tuple[str, str], tuple[NDArray[Any], NDArray[Any]]]]:
    """The whole set and every segment in one pass: per model, range partitions by score, one
    map over them, exact merges on the driver, then the engine's summaries."""
    from dask.base import compute
    from dask.delayed import delayed

    seed, n_boot = poisson_seed(options.seed), options.n_boot
    columns = list(
        dict.fromkeys(["image_id", "label", "score", unit, *_segment_columns(segment_by)])
    )
    ranged = [ddf[ddf["model"] == m][columns].set_index("score", drop=False) for m in models]
    parts = [r.to_delayed() for r in ranged]
    sums = compute(
        *[
            delayed(_partition_sums)(p, unit, segment_by, seed, n_boot, eps)
            for ps in parts
            for p in ps
        ]
    )
    step(n_boot * len(models))
    values: dict[str, tuple[Any, ...]] = {}
    found: dict[tuple[str, str], list[_Found]] = {}
    k = 0
    for m, ps in zip(models, parts, strict=True):
        for per_partition in sums[k : k + len(ps)]:  # the partitions in score order
            for name, group in per_partition.items():
                values.setdefault(name, group.values)
                found.setdefault((name, m), []).append(group)
        k += len(ps)
    unknown = [s for s in baselines if s != GLOBAL and s not in values]
    if unknown:
        raise InputError(
            f"baseline names segment {unknown[0]!r}, which is not among {sorted(values)[1:]}."
        )
    names = _in_order(values)
    parts_out = [
        _part(name, {m: _merged([g.sums for g in found[name, m]]) for m in models}, models,
              specs, baselines.get(name, baselines[GLOBAL]), options)
        for name in names
    ]  # fmt: skip
    hists = {
        key: (np.sum([g.hist for g in groups], axis=0), np.sum([g.fine for g in groups], axis=0))
        for key, groups in found.items()
    }
    return parts_out, hists


def _in_order(values: dict[str, tuple[Any, ...]]) -> list[str]:
    """The whole set first, then the segments by their values, as in memory (by name where
    values of different types do not compare)."""
    names = [n for n in values if n != GLOBAL]
    try:
        names.sort(key=lambda n: values[n])
    except TypeError:
        names.sort()
    return [GLOBAL, *names]


def _part(
    name: str,
    totals: dict[str, NDArray[np.float64]],
    models: tuple[str, ...],
    specs: tuple[MetricSpec, ...],
    baseline: str | None,
    options: BootstrapOptions,
) -> PartResult:
    """Finalize: the same last divisions as the in-memory kernels, then the engine's summaries."""
    estimates: dict[Hashable, NDArray[np.float64]] = {}
    draws: dict[Hashable, NDArray[np.float64]] = {}
    for m in models:
        w_pos, w_neg, loss_pos, loss_neg, u = totals[m].T
        auc = _undefined_where(u, w_pos * w_neg, (w_pos <= 0) | (w_neg <= 0))
        wll = wll_value(loss_pos, loss_neg, w_pos, w_neg)
        for spec, value in ((AUC, auc), (WLL, wll)):
            estimates[spec.name, m] = value[:1]
            draws[spec.name, m] = value[1:, None]
    full = totals[models[0]][0]
    return part_from_draws(
        Draws(estimates, draws),
        n=int(full[0] + full[1]),
        n_pos=int(full[0]),
        models=models,
        specs=specs,
        baseline=baseline,
        options=options,
        name=name,
    )


def _segment_columns(segment_by: str | Sequence[str] | None) -> list[str]:
    return frames.segment_columns(segment_by) if segment_by else []


def _evaluation(
    parts: list[PartResult],
    hists: dict[tuple[str, str], tuple[NDArray[Any], NDArray[Any]]],
    models: tuple[str, ...],
    specs: tuple[MetricSpec, ...],
    baselines: dict[str, str | None],
    options: BootstrapOptions,
    seed: SeedLike,
    segment_by: str | Sequence[str] | None,
    cluster: str | None,
) -> Evaluation:
    """The :class:`~segeval.evaluation.Evaluation` of the parts: the tables a report needs,
    those that need every row in one place left empty (see :data:`NOT_ON_DASK`)."""
    metric_rows, comparison_rows, delta_rows = [], [], []
    for part in parts:
        metric_rows += [{"model": m, **table_row(part, m, specs)} for m in models]
        base = baselines.get(str(part.name), baselines[GLOBAL])
        if base is not None:
            comparison_rows += [
                frames.comparison_row(r, m, base, str(part.name), part.reason)
                for m, r in part.comparisons.items()
            ]
            delta_rows += frames.delta_rows(part, base)
    metrics = pd.DataFrame(metric_rows, columns=["model", *table_columns(specs)])
    comparisons = frames.with_holm(
        pd.DataFrame(comparison_rows, columns=frames.COMPARISON_COLUMNS), options
    )
    deltas = pd.DataFrame(delta_rows, columns=frames.DELTA_COLUMNS)
    training = pd.DataFrame(columns=["run", "step", "segment", "wll", "auc"])
    diagnostics = frames.diagnostics(metrics, training, specs)
    names = [str(p.name) for p in parts]
    audit = audit_counts(names[1:], [[p.n - p.n_pos, p.n_pos] for p in parts[1:]])
    if len(parts) == 1:  # no segments: the whole set alone
        audit = audit_counts([GLOBAL], [[parts[0].n - parts[0].n_pos, parts[0].n_pos]])
    return Evaluation(
        models=models,
        baselines={k: v for k, v in baselines.items() if v is not None},
        runs={m: (m,) for m in models},
        segments=tuple(names),
        data=audit.table,
        data_warnings=(NOT_ON_DASK, *audit.warnings),
        metrics=metrics,
        comparisons=comparisons,
        diagnostics=diagnostics,
        op_points=pd.DataFrame(columns=["model", "segment", "threshold"]),
        op_spread=pd.DataFrame(),
        roc=_roc(hists, models, names),
        score_hist=_score_hist(hists, models, names),
        training=training,
        scorecard=scorecard(
            models,
            metrics,
            comparisons,
            diagnostics,
            pd.DataFrame(),
            pd.DataFrame(),
            deltas=deltas,
            specs=specs,
        ),
        deltas=deltas,
        settings={
            "segment_by": _segment_columns(segment_by),
            "unused_segment_columns": [],
            "metrics": [s.name for s in specs],
            "n_boot": options.n_boot,
            "ci": options.ci,
            "resample": "poisson",
            "verdict_rule": options.verdict_rule,
            "cluster": cluster,
            "seed": seed if isinstance(seed, int) or seed is None else repr(seed),
            "thresholds": [],
            "engine": "dask",
        },
        provenance=_provenance(int(parts[0].n) * len(models)),
    )


NOT_ON_DASK = (
    "Evaluated on Dask (Poisson bootstrap): WLL, AUC, ΔAUC and their intervals are exact; "
    "operating points, segment leakage and DeLong p-values need every row in one place and "
    "are not in this report, and the ROC curves are drawn from 1000-bin score histograms."
)


def _score_hist(
    hists: dict[tuple[str, str], tuple[NDArray[Any], NDArray[Any]]],
    models: tuple[str, ...],
    names: list[str],
) -> pd.DataFrame:
    """The report's score densities (as :func:`segeval.frames.score_histograms`, whose
    ``np.histogram(density=True)`` divides the same way)."""
    edges = np.linspace(0, 1, HIST_BINS + 1)
    width = np.diff(edges)
    rows = [
        pd.DataFrame({"model": m, "segment": name, "label": label, "bin_left": edges[:-1],
                      "bin_right": edges[1:], "density": counts / width / counts.sum(),
                      "n": int(counts.sum())})
        for name in names
        for m in models
        for label, counts in enumerate(hists[name, m][0])
        if counts.sum()
    ]  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def _roc(
    hists: dict[tuple[str, str], tuple[NDArray[Any], NDArray[Any]]],
    models: tuple[str, ...],
    names: list[str],
) -> pd.DataFrame:
    """ROC curves at the ROC_BINS + 1 bin edges, from the top score down (for the figure)."""
    rows = []
    for name in names:
        for m in models:
            neg, pos = hists[name, m][1]
            if not neg.sum() or not pos.sum():
                continue
            fpr = np.concatenate([[0.0], np.cumsum(neg[::-1]) / neg.sum()])
            tpr = np.concatenate([[0.0], np.cumsum(pos[::-1]) / pos.sum()])
            rows.append(pd.DataFrame({"model": m, "segment": name, "fpr": fpr, "tpr": tpr}))
    return (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=["model", "segment", "fpr", "tpr"])
    )


# ---------------------------------------------------------------- files and clusters


def parquet_files(patterns: Sequence[str]) -> list[str]:
    """The files matching ``patterns`` (globs), sorted; at least one."""
    import glob

    files = sorted({f for p in patterns for f in glob.glob(str(p))})
    if not files:
        raise InputError(f"No Parquet file matches {', '.join(map(str, patterns))}.")
    return files


def read_parquet_files(patterns: Sequence[str]) -> Any:
    """A Dask DataFrame of the Parquet files matching ``patterns`` (globs), after checking each
    file's schema (metadata only): the predictions columns in every file, one type per column
    across files. A file without ``model`` would be ambiguous here: every file needs it."""
    import dask.dataframe as dd
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    files = parquet_files(patterns)
    types: dict[str, tuple[str, pa.DataType]] = {}
    for path in files:
        if not path.lower().endswith(".parquet"):
            raise InputError(f"On Dask, predictions are Parquet files; got {path!r}.")
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"Cannot read the Parquet file {path!r}: {exc}") from None
        missing = [c for c in (*REQUIRED, "model") if c not in schema.names]
        if missing:
            raise InputError(
                f"The predictions file {path!r} lacks the column(s) {', '.join(missing)}; "
                f"every file needs {', '.join((*REQUIRED, 'model'))}."
            )
        for column in schema:
            kind = _kind(column.type)
            seen = types.setdefault(column.name, (path, kind))
            if seen[1] != kind:
                raise InputError(
                    f"Column {column.name!r} is {seen[1]} in {seen[0]!r} but {kind} in {path!r}; "
                    "every file must give a column one type."
                )
    return dd.read_parquet(files)


def _kind(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return "integer"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "text"
    return str(t)


def client_for(scheduler: str | None, *, n_workers: int | None = None) -> Any:
    """A ``distributed.Client``: to the scheduler at ``scheduler``, else to a new
    ``LocalCluster`` of worker processes on this machine (loopback only, no dashboard)."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="5s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"Cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
    import dask

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_MALLOC}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    return Client(cluster)


# Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's threshold for
# serving allocations by mmap at 128 KiB: then every block of weights (8 MiB) is mapped, faulted
# in page by page and unmapped again, and the map step took 2-3x the CPU time it takes in a plain
# process (measured). Heap allocations up to 64 MiB, and up to 128 MiB kept free, restore it.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": 1 << 26, "MALLOC_TRIM_THRESHOLD_": 1 << 27}
