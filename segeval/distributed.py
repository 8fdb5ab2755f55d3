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

*Whole set.* AUC needs, for each positive, the weight of the negatives scored below it, across
partitions. Each model's rows are range-partitioned by score (``set_index``: equal scores never
straddle two partitions); a first pass returns each partition's class weights per resample, the
driver takes the exclusive prefix of the negative weights over partitions, and a second pass
adds, per partition, each positive's weight times (negatives below it in earlier partitions +
those below it here + half the tied ones). Communication: partitions x resamples numbers.

*Each segment.* Rows are shuffled by segment so each segment is one partition; the segment is
then evaluated by :func:`segeval.engine.evaluate_part` exactly as in memory (rows sorted by
image id), so every registered metric works. Each segment must fit in one worker's memory.

WLL and AUC are evaluated on the whole set (and any metric of the registry per segment is not
offered here: the whole-set merge implements these two). Dask is imported only when this module
is used: ``import segeval`` works without it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from segeval import frames
from segeval._kernels import WLLKernel, _undefined_where, wll_value
from segeval.engine import PartResult, evaluate_part, part_from_draws
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
from segeval.segments import GLOBAL, segment_keys
from segeval.table import table_columns, table_row
from segeval.validation import InputError, SeedLike

REQUIRED = ("image_id", "label", "score")
SEGMENT = "_segeval_segment"  # the column the rows are shuffled on


@dataclass(frozen=True, repr=False)
class DistributedEvaluation:
    """The tables of an evaluation on Dask, with the columns of :class:`segeval.Evaluation`.

    ``metrics``: WLL and AUC with CIs per model and segment (``__global__`` = whole set);
    ``comparisons``: ΔAUC against the baseline with the paper's p-value, verdict and Holm
    (DeLong's p-value, which needs every row in one place, is left out: NaN); ``deltas``: each
    metric minus the baseline's; ``data``: images, benign, malignant per segment.
    """

    models: tuple[str, ...]
    segments: tuple[str, ...]
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    deltas: pd.DataFrame
    data: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"DistributedEvaluation({len(self.models)} model(s), {len(self.segments) - 1} "
            f"segment(s), n_boot={self.settings.get('n_boot')})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready."""
        from segeval.io import to_jsonable

        out: dict[str, Any] = to_jsonable(
            {
                "models": list(self.models),
                "segments": list(self.segments),
                "settings": self.settings,
                "data": self.data,
                "metrics": self.metrics,
                "comparisons": self.comparisons,
                "deltas": self.deltas,
            }
        )
        return out

    def write(self, path: str | Any) -> list[Any]:
        """``STEM.json`` and ``STEM_{metrics,comparisons,deltas,data}.csv`` beside ``path``."""
        import json
        from pathlib import Path

        from segeval.io import write_csv, write_text

        path = Path(path)
        stem = path.with_suffix("")
        json_path = stem.with_suffix(".json")
        write_text(json_path, json.dumps(self.to_dict(), indent=2) + "\n")
        written = [json_path]
        for name in ("metrics", "comparisons", "deltas", "data"):
            target = stem.parent / f"{stem.name}_{name}.csv"
            write_csv(target, getattr(self, name))
            written.append(target)
        return written


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
    progress: Callable[[int, int], None] | None = None,
) -> DistributedEvaluation:
    """Evaluate a Dask DataFrame of predictions with Poisson resampling, on the current client.

    Parameters are those of :func:`segeval.evaluate` (``resample`` is ``"poisson"``; metrics
    ``wll`` and ``auc``). The computation runs on the active ``distributed.Client`` (see
    :func:`client_for`), or Dask's default scheduler. The numbers equal those of
    ``segeval.evaluate(predictions.compute(), resample="poisson", ...)`` bit for bit, for any
    partitioning and any number of workers.
    """
    options = BootstrapOptions.make(n_boot=n_boot, ci=ci, resample="poisson", seed=seed)
    specs = _check_metrics(metrics)
    ddf = _check_frame(predictions, segment_by, cluster)
    models = _check_models(ddf)
    default, per_segment = frames.parse_baseline(baseline)
    for m in [default, *per_segment.values()]:
        if m is not None and m not in models:
            raise InputError(f"baseline {m!r} is not a model of the predictions; models: {models}.")
    done = [0]
    total = n_boot * len(models) * 2

    def step(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(k, total)

    unit = cluster or "image_id"
    whole = _global_part(ddf, models, unit, specs, default, options, eps, step)
    parts = [whole]
    if segment_by is not None:
        parts += _segment_parts(
            ddf, segment_by, models, specs, default, per_segment, options, cluster
        )
    baselines = {GLOBAL: default, **per_segment}
    return _tables(parts, models, specs, baselines, default, options, seed, segment_by, cluster)


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
    pos = int(summaries["positives"].sum())
    if pos == 0 or pos == int(counts.sum()):
        raise InputError("The predictions hold one class only; AUC and WLL need both classes.")
    return models


_SUMMARY_META = pd.DataFrame(
    {
        "model": pd.Series([], dtype=object),
        "rows": pd.Series([], dtype=np.int64),
        "positives": pd.Series([], dtype=np.int64),
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
    grouped = frame.assign(_pos=label == 1).groupby("model", sort=True)
    out = pd.DataFrame(
        {
            "model": grouped.size().index.astype(str).to_numpy(dtype=object),
            "rows": grouped.size().to_numpy(np.int64),
            "positives": grouped["_pos"].sum().to_numpy(np.int64),
        }
    )
    out["problem"] = np.array([problem] * len(out), dtype=object)
    if not len(out) and problem:
        out = pd.DataFrame({"model": ["?"], "rows": [0], "positives": [0], "problem": [problem]})
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


def _class_sums(
    frame: pd.DataFrame, unit: str, seed: int, n_boot: int, eps: float
) -> NDArray[np.float64]:
    """Map, first pass: per resample (row 0: the full data) the positives' and negatives'
    weights and weighted (exact) log losses of one partition: shape (n_boot + 1, 4)."""
    y, s, hashes = _prepared(frame, unit)
    out = np.zeros((n_boot + 1, 4))
    if not y.size:
        return out
    wll = WLLKernel(y, s, eps, exact=True)
    for block in _blocks(y.size, n_boot):
        w = _weights(hashes, seed, block)
        rows = slice(block.start + 1, block.stop + 1)
        out[rows, 0] = w @ wll.pos_indicator
        out[rows, 1] = w.sum(axis=1) - out[rows, 0]
        out[rows, 2] = w @ wll.loss_pos
        out[rows, 3] = w @ wll.loss_neg
    return out


def _pairs_ordered(
    frame: pd.DataFrame, offsets: NDArray[np.float64], unit: str, seed: int, n_boot: int
) -> NDArray[np.float64]:
    """Map, second pass: per resample, the weighted count of (negative, positive) pairs ordered
    negative < positive (ties one half) whose positive is in this partition; ``offsets``: the
    negatives' weight in the partitions scored below this one."""
    y, s, hashes = _prepared(frame, unit)
    out = np.zeros(n_boot + 1)
    if not y.size:
        return out
    neg = np.flatnonzero(y == 0)
    neg = neg[np.argsort(s[neg], kind="stable")]
    pos = np.flatnonzero(y == 1)
    lo = np.searchsorted(s[neg], s[pos], side="left")
    hi = np.searchsorted(s[neg], s[pos], side="right")
    for block in _blocks(y.size, n_boot):
        w = _weights(hashes, seed, block)
        cs = np.zeros((w.shape[0], neg.size + 1))
        np.cumsum(w[:, neg], axis=1, out=cs[:, 1:])
        rows = slice(block.start + 1, block.stop + 1)
        wp = w[:, pos]
        # Every term is a half-integer below 2^53: the sums are exact in any order.
        here = np.einsum("ij,ij->i", wp, cs[:, lo] + cs[:, hi]) / 2
        out[rows] = here + offsets[rows] * wp.sum(axis=1)
    return out


def _global_part(
    ddf: Any,
    models: tuple[str, ...],
    unit: str,
    specs: tuple[MetricSpec, ...],
    baseline: str | None,
    options: BootstrapOptions,
    eps: float,
    step: Callable[[int], None],
) -> PartResult:
    """The whole set: per model, range partitions by score, two map passes, exact merges."""
    from dask.base import compute
    from dask.delayed import delayed

    seed, n_boot = poisson_seed(options.seed), options.n_boot
    columns = ["image_id", "label", "score", *([unit] if unit != "image_id" else [])]
    # Not persisted: persisted collections hold futures of the client that made them, which
    # hung when another client became current; each pass recomputes the range partitioning.
    ranged = [ddf[ddf["model"] == m][columns].set_index("score", drop=False) for m in models]
    parts = [r.to_delayed() for r in ranged]
    # First pass, every model at once: class weights and losses per partition and resample.
    sums = compute(*[delayed(_class_sums)(p, unit, seed, n_boot, eps) for ps in parts for p in ps])
    step(n_boot * len(models))
    per_model, k = [], 0
    for ps in parts:
        per_model.append(np.stack(sums[k : k + len(ps)]))  # (partitions, n_boot + 1, 4)
        k += len(ps)
    # The driver's exclusive prefix of the negatives' weight over the partitions below.
    below = [np.cumsum(t[:, :, 1], axis=0) - t[:, :, 1] for t in per_model]
    pairs = compute(
        *[
            delayed(_pairs_ordered)(p, below[j][i], unit, seed, n_boot)
            for j, ps in enumerate(parts)
            for i, p in enumerate(ps)
        ]
    )
    step(n_boot * len(models))
    estimates: dict[Hashable, NDArray[np.float64]] = {}
    draws: dict[Hashable, NDArray[np.float64]] = {}
    k = 0
    for m, ps, per_part in zip(models, parts, per_model, strict=True):
        u = np.sum(np.stack(pairs[k : k + len(ps)]), axis=0)
        k += len(ps)
        w_pos, w_neg, loss_pos, loss_neg = (per_part[:, :, j].sum(axis=0) for j in range(4))
        auc = _undefined_where(u, w_pos * w_neg, (w_pos <= 0) | (w_neg <= 0))
        wll = wll_value(loss_pos, loss_neg, w_pos, w_neg)
        for spec, values in ((AUC, auc), (WLL, wll)):
            estimates[spec.name, m] = values[:1]
            draws[spec.name, m] = values[1:, None]
    n, n_pos = int(w_pos[0] + w_neg[0]), int(w_pos[0])
    return part_from_draws(
        Draws(estimates, draws),
        n=n,
        n_pos=n_pos,
        models=models,
        specs=specs,
        baseline=baseline,
        options=options,
        name=GLOBAL,
    )


# ---------------------------------------------------------------- segments: shuffle, then engine


def _segment_names(frame: pd.DataFrame, segment_by: str | Sequence[str]) -> pd.Series:
    if not len(frame):
        return pd.Series([], dtype=object, index=frame.index)
    seg = segment_keys(frame, segment_by)
    return pd.Series(np.asarray(seg.names, dtype=object)[seg.codes], index=frame.index)


def _evaluate_segments(
    frame: pd.DataFrame,
    models: tuple[str, ...],
    specs: tuple[MetricSpec, ...],
    baselines: dict[str, str],
    options: BootstrapOptions,
    cluster: str | None,
) -> list[PartResult]:
    """Every segment of one partition (each segment lies whole in one), as in memory."""
    out = []
    for name, rows in frame.groupby(SEGMENT, sort=True):
        per_model = {
            str(m): g.sort_values("image_id", kind="stable").reset_index(drop=True)
            for m, g in rows.assign(image_id=rows["image_id"].astype(str)).groupby("model")
        }
        reference = per_model[models[0]]
        y = pd.to_numeric(reference["label"]).to_numpy(np.int8)
        for m in models[1:]:
            if not np.array_equal(pd.to_numeric(per_model[m]["label"]).to_numpy(np.int8), y):
                raise InputError(
                    f"Models {models[0]!r} and {m!r} give different labels to the same image_id."
                )
        scores = {m: pd.to_numeric(per_model[m]["score"]).to_numpy(np.float64) for m in models}
        out.append(
            evaluate_part(
                y,
                scores,
                options=options,
                metrics=specs,
                baseline=baselines.get(str(name)),
                clusters=reference[cluster].to_numpy() if cluster else None,
                ids=reference["image_id"].to_numpy(),
                name=str(name),
            )
        )
    return out


def _segment_parts(
    ddf: Any,
    segment_by: str | Sequence[str],
    models: tuple[str, ...],
    specs: tuple[MetricSpec, ...],
    default: str | None,
    per_segment: dict[str, str],
    options: BootstrapOptions,
    cluster: str | None,
) -> list[PartResult]:
    from dask.base import compute
    from dask.delayed import delayed

    keyed = ddf.assign(
        **{SEGMENT: ddf.map_partitions(_segment_names, segment_by, meta=(SEGMENT, object))}
    )
    names = sorted(str(v) for v in keyed[SEGMENT].unique().compute())
    baselines = {name: default for name in names if default is not None} | per_segment
    unknown = [s for s in per_segment if s not in names]
    if unknown:
        raise InputError(f"baseline names segment {unknown[0]!r}, which is not among {names}.")
    shuffled = keyed.shuffle(on=SEGMENT, npartitions=min(len(names), keyed.npartitions * 4))
    tasks = [
        delayed(_evaluate_segments)(p, models, specs, baselines, options, cluster)
        for p in shuffled.to_delayed()
    ]
    found = [part for parts in compute(*tasks) for part in parts]
    return sorted(found, key=lambda part: names.index(str(part.name)))


def _tables(
    parts: list[PartResult],
    models: tuple[str, ...],
    specs: tuple[MetricSpec, ...],
    baselines: dict[str, str | None],
    default: str | None,
    options: BootstrapOptions,
    seed: SeedLike,
    segment_by: str | Sequence[str] | None,
    cluster: str | None,
) -> DistributedEvaluation:
    metric_rows, comparison_rows, delta_rows, data_rows = [], [], [], []
    for part in parts:
        metric_rows += [{"model": m, **table_row(part, m, specs)} for m in models]
        base = baselines.get(str(part.name), default)
        if base is not None:
            comparison_rows += [
                frames.comparison_row(r, m, base, str(part.name), part.reason)
                for m, r in part.comparisons.items()
            ]
            delta_rows += frames.delta_rows(part, base)
        data_rows.append(
            {"segment": part.name, "images": part.n, "benign": part.n - part.n_pos,
             "malignant": part.n_pos}
        )  # fmt: skip
    comparisons = pd.DataFrame(comparison_rows, columns=frames.COMPARISON_COLUMNS)
    return DistributedEvaluation(
        models=models,
        segments=tuple(str(p.name) for p in parts),
        metrics=pd.DataFrame(metric_rows, columns=["model", *table_columns(specs)]),
        comparisons=frames.with_holm(comparisons, options),
        deltas=pd.DataFrame(delta_rows, columns=frames.DELTA_COLUMNS),
        data=pd.DataFrame(data_rows),
        settings={
            "segment_by": frames.segment_columns(segment_by) if segment_by else [],
            "metrics": [s.name for s in specs],
            "n_boot": options.n_boot,
            "ci": options.ci,
            "resample": "poisson",
            "cluster": cluster,
            "seed": seed if isinstance(seed, int) or seed is None else repr(seed),
            "engine": "dask",
        },
    )


# ---------------------------------------------------------------- files and clusters


def read_parquet_files(patterns: Sequence[str]) -> Any:
    """A Dask DataFrame of the Parquet files matching ``patterns`` (globs), after checking each
    file's schema (metadata only): the predictions columns in every file, one type per column
    across files. A file without ``model`` would be ambiguous here: every file needs it."""
    import glob

    import dask.dataframe as dd
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    files = sorted({f for p in patterns for f in glob.glob(str(p))})
    if not files:
        raise InputError(f"No Parquet file matches {', '.join(map(str, patterns))}.")
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
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    return Client(cluster)
