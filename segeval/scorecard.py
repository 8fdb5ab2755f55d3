"""The scorecard: one row per model that answers "which model would I use, and where does it fail?".

Every number is read off the other frames of an :class:`~segeval.evaluation.Evaluation`
(metrics, comparisons, diagnostics, op_spread); nothing is recomputed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from segeval.dtypes import STRING, typed
from segeval.registry import MetricSpec
from segeval.segments import GLOBAL

SCORECARD_COLUMNS = [
    "model",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "baseline",
    "delta_auc",
    "delta_ci_low",
    "delta_ci_high",
    "p_holm",
    "verdict_holm",
    "n_segments_compared",
    "n_segments_better",
    "n_segments_worse",
    "worst_segment",
    "worst_delta_auc",
    "worst_verdict_holm",
    "segment_bias_test",
    "segment_bias_validation",
    "segment_bias_test_reason",
    "segment_bias_validation_reason",
    "leakage_benign",
    "leakage_segment",
    "leakage_null_q95",
    "op_spread_max",
    "op_spread_threshold",
    "summary",
]


# The scorecard's dtypes: numbers as floats, counts as Int64 and flags as boolean (both with
# missing values, e.g. on the baseline's row), names and verdicts as strings.
_TEXT = (
    "model", "baseline", "verdict_holm", "worst_segment", "worst_verdict_holm",
    "segment_bias_test_reason", "segment_bias_validation_reason", "leakage_segment", "summary",
)  # fmt: skip
_COUNTS = ("n_segments_compared", "n_segments_better", "n_segments_worse")
_FLAGS = ("segment_bias_test", "segment_bias_validation")


def scorecard_dtypes(columns: Sequence[str], *, over_runs: bool = False) -> dict[str, Any]:
    """The dtype of each scorecard column: ``STRING`` for names, verdicts and sentences,
    ``"Int64"`` for counts, ``"boolean"`` for the segment-bias flags (over runs,
    ``segment_bias_test`` counts the runs flagged: ``"Int64"``), float for the rest."""
    out: dict[str, Any] = {}
    for c in columns:
        if c in _TEXT or c.startswith("verdict_"):
            out[c] = STRING
        elif c in _COUNTS or c == "n_runs" or (over_runs and c == "segment_bias_test"):
            out[c] = "Int64"
        elif c in _FLAGS:
            out[c] = "boolean"
        else:
            out[c] = float
    return out


def headline_columns(specs: Sequence[MetricSpec]) -> list[str]:
    """The scorecard's columns of the headline metrics (operating points): the global value and
    CI, and the paired difference against the baseline with its CI and verdict."""
    return [
        f"{prefix}{spec.name}{suffix}"
        for spec in specs
        if spec.headline
        for prefix, suffix in (
            ("", ""), ("", "_ci_low"), ("", "_ci_high"),
            ("delta_", ""), ("delta_", "_ci_low"), ("delta_", "_ci_high"), ("verdict_", ""),
        )
    ]  # fmt: skip


def scorecard(
    models: tuple[str, ...],
    metrics: pd.DataFrame,
    comparisons: pd.DataFrame,
    diagnostics: pd.DataFrame,
    op_spread: pd.DataFrame,
    leakage_summary: pd.DataFrame,
    *,
    deltas: pd.DataFrame | None = None,
    specs: Sequence[MetricSpec] = (),
) -> pd.DataFrame:
    """One row per model (the baseline first), in the columns of ``SCORECARD_COLUMNS`` (then
    those of the headline metrics evaluated, :func:`headline_columns`).

    - ``auc*``: global AUC and CI; ``delta_*``, ``p_holm``, ``verdict_holm``: the global
      comparison with the baseline (NaN/empty for the baseline itself, or without one);
    - ``n_segments_better`` / ``_worse``: segments whose Holm verdict is a significant
      increase / decrease, out of ``n_segments_compared`` with a defined ΔAUC;
    - ``worst_*``: the significantly worse segment (Holm) of lowest ΔAUC; when none is
      significantly worse, the segment of lowest ΔAUC;
    - ``segment_bias_test``: the diagnostics' flag on the evaluated set, None when it is
      undefined (no segments, or fewer than two with both classes), with the diagnostics'
      reason in ``segment_bias_test_reason``; ``segment_bias_validation``: on the last
      validation of the run named as the model (None, and no reason, when there is no such run);
    - ``leakage_benign``: segment leakage among the benign images of the evaluated set, the
      ``|AUC − 0.5|`` of ``leakage_segment``, the segment the score tells apart most (NaN
      without segments), and ``leakage_null_q95`` the 95th percentile of that number with the
      segments permuted within the label (what it reaches without any segment shift);
    - ``op_spread_max``: the largest OP spread over the thresholds (NaN when undefined), at
      ``op_spread_threshold``;
    - ``summary``: one sentence per model that combines the evidence (:func:`summary`);
    - for each headline metric ``m`` (sensitivity at a fixed specificity, PPV…): ``m`` and its
      CI on the whole set, ``delta_m`` against the baseline with its CI, and ``verdict_m`` (the
      paper's rule, uncorrected).
    """
    rows = [
        _row(m, metrics, comparisons, diagnostics, op_spread)
        | _leakage(m, leakage_summary)
        | _headline(m, metrics, deltas, specs)
        for m in models
    ]
    columns = [*SCORECARD_COLUMNS, *headline_columns(specs)]
    card = _with_summaries(pd.DataFrame(rows, columns=columns, dtype=object))
    return typed(card, scorecard_dtypes(columns))


def _headline(
    model: str, metrics: pd.DataFrame, deltas: pd.DataFrame | None, specs: Sequence[MetricSpec]
) -> dict[str, Any]:
    whole = metrics[(metrics.model == model) & (metrics.segment == GLOBAL)].iloc[0]
    row: dict[str, Any] = {}
    for spec in (s for s in specs if s.headline):
        m = spec.name
        row |= {
            m: whole[m],
            f"{m}_ci_low": whole[f"{m}_ci_low"],
            f"{m}_ci_high": whole[f"{m}_ci_high"],
        }
        if deltas is not None and len(deltas):
            d = deltas[(deltas.model == model) & (deltas.segment == GLOBAL) & (deltas.metric == m)]
            if len(d):
                row |= {
                    f"delta_{m}": d.delta.iloc[0],
                    f"delta_{m}_ci_low": d.delta_ci_low.iloc[0],
                    f"delta_{m}_ci_high": d.delta_ci_high.iloc[0],
                    f"verdict_{m}": d.verdict.iloc[0],
                }
    return row


def _row(
    model: str,
    metrics: pd.DataFrame,
    comparisons: pd.DataFrame,
    diagnostics: pd.DataFrame,
    op_spread: pd.DataFrame,
) -> dict[str, Any]:
    whole = metrics[(metrics.model == model) & (metrics.segment == GLOBAL)].iloc[0]
    row: dict[str, Any] = {
        "model": model,
        "auc": whole.auc,
        "auc_ci_low": whole.auc_ci_low,
        "auc_ci_high": whole.auc_ci_high,
        **_against_baseline(model, comparisons),
    }
    for key, on in (("test", "evaluated set"), ("validation", "validation, last step")):
        row[f"segment_bias_{key}"], row[f"segment_bias_{key}_reason"] = _flag(
            diagnostics, model, on
        )
    if len(op_spread) and len(
        spread := op_spread[op_spread.model == model].dropna(subset=["spread"])
    ):
        top = spread.iloc[int(np.argmax(spread.spread.to_numpy()))]
        row |= {"op_spread_max": top.spread, "op_spread_threshold": top.threshold}
    return row


def _against_baseline(model: str, comparisons: pd.DataFrame) -> dict[str, Any]:
    """The global comparison, the segments counted by Holm verdict, and the worst segment."""
    row: dict[str, Any] = {}
    mine = comparisons[comparisons.model == model] if len(comparisons) else comparisons
    glob = mine[mine.segment == GLOBAL] if len(mine) else mine
    if len(glob):
        g = glob.iloc[0]
        row |= {k: g[k] for k in ("baseline", "delta_auc", "delta_ci_low", "delta_ci_high")}
        row |= {"p_holm": g.p_holm, "verdict_holm": g.verdict_holm}
    local = mine[(mine.segment != GLOBAL) & mine.delta_auc.notna()] if len(mine) else mine
    if len(local):
        worse = local[local.verdict_holm == "significant decrease"]
        pool = worse if len(worse) else local
        worst = pool.iloc[int(np.argmin(pool.delta_auc.to_numpy()))]
        row |= {
            "n_segments_compared": len(local),
            "n_segments_better": int((local.verdict_holm == "significant increase").sum()),
            "n_segments_worse": int((local.verdict_holm == "significant decrease").sum()),
            "worst_segment": worst.segment,
            "worst_delta_auc": worst.delta_auc,
            "worst_verdict_holm": worst.verdict_holm,
        }
    return row


RECIPE_SCORECARD_COLUMNS = [*SCORECARD_COLUMNS, "n_runs", "auc_runs_min", "auc_runs_max"]


def recipe_scorecard(
    recipes: Mapping[str, Sequence[tuple[str, str]]],
    runs: pd.DataFrame,
    recipe_comparisons: pd.DataFrame,
    diagnostics: pd.DataFrame,
) -> pd.DataFrame:
    """One row per model given as several runs (training seeds), in
    ``RECIPE_SCORECARD_COLUMNS``: what the scorecard says when predictions have a ``run`` column.

    ``recipes`` maps a model to its (run, evaluated model) pairs; ``runs`` is the
    :func:`scorecard` of the evaluated models (one per run); ``recipe_comparisons`` holds the
    comparisons over images *and* seeds, with Holm (:func:`segeval.runs.compare_recipes`).

    - ``auc``: the mean of the runs' global AUCs, ``auc_runs_min`` / ``_max`` their range
      (``auc_ci_*`` NaN: the across-seed interval is the ΔAUC's);
    - ``delta_*``, ``verdict_holm``, the segment counts and the worst segment: as in
      :func:`scorecard`, from ``recipe_comparisons``;
    - ``segment_bias_test``: how many runs are flagged on the evaluated set (None if none was
      judged, with the first run's reason); ``segment_bias_validation``: the flag of the
      training run folder named as the model (None when there is none);
    - ``leakage_benign``: the mean over the runs of their benign leakage; ``leakage_segment``
      the segment most often farthest from 0.5;
    - ``op_spread_max``: the mean over the runs of each run's largest OP spread
      (``op_spread_threshold`` None: it differs between runs).
    """
    card = runs.set_index("model")
    rows = []
    for recipe, pairs in recipes.items():
        mine = card.loc[[m for _, m in pairs]]
        flags = [bool(f) for f in mine.segment_bias_test.dropna()]
        spreads = pd.to_numeric(mine.op_spread_max, errors="coerce").dropna()
        leaks = pd.to_numeric(mine.leakage_benign, errors="coerce").dropna()
        nulls = pd.to_numeric(mine.leakage_null_q95, errors="coerce").dropna()
        auc = pd.to_numeric(mine.auc, errors="coerce")
        validation = _flag(diagnostics, recipe, "validation, last step")
        rows.append(
            {
                "model": recipe,
                "auc": float(auc.mean()),
                **_against_baseline(recipe, recipe_comparisons),
                "segment_bias_test": sum(flags) if flags else None,
                "segment_bias_test_reason": None
                if flags
                else _first(mine.segment_bias_test_reason),
                "segment_bias_validation": validation[0],
                "segment_bias_validation_reason": validation[1],
                "leakage_benign": float(leaks.mean()) if len(leaks) else None,
                "leakage_null_q95": float(nulls.mean()) if len(nulls) else None,
                "leakage_segment": _most_frequent(mine.leakage_segment),
                "op_spread_max": float(spreads.mean()) if len(spreads) else None,
                "n_runs": len(pairs),
                "auc_runs_min": float(auc.min()),
                "auc_runs_max": float(auc.max()),
            }
        )
    card = _with_summaries(pd.DataFrame(rows, columns=RECIPE_SCORECARD_COLUMNS, dtype=object))
    return typed(card, scorecard_dtypes(RECIPE_SCORECARD_COLUMNS, over_runs=True))


def _leakage(model: str, summary: pd.DataFrame) -> dict[str, Any]:
    if not len(summary):
        return {}
    rows = summary[
        (summary.model == model) & (summary.on == "evaluated set") & (summary.label == "benign")
    ]
    if not len(rows):
        return {}
    return {
        "leakage_benign": rows.leakage.iloc[0],
        "leakage_segment": rows.segment.iloc[0],
        "leakage_null_q95": rows.null_q95.iloc[0],
    }


def _flag(diagnostics: pd.DataFrame, model: str, on: str) -> tuple[bool | None, str | None]:
    """The segment-bias flag of ``model`` on ``on``, and why it is undefined: (None, None) when
    there is nothing to judge there, (None, message) when the check is undefined."""
    rows = diagnostics[(diagnostics.model == model) & (diagnostics.on == on)]
    if not len(rows):
        return None, None
    if "judged" in rows and not bool(rows.judged.iloc[0]):
        return None, str(rows.reason.iloc[0])
    return bool(rows.suspicious.iloc[0]), None


def _first(values: pd.Series) -> Any:
    present = values.dropna()
    return present.iloc[0] if len(present) else None


def _most_frequent(values: pd.Series) -> Any:
    counts = values.dropna().value_counts()
    return counts.index[0] if len(counts) else None


def _ordered(card: pd.DataFrame) -> pd.DataFrame:
    """Rows in a stable order that reads: the baseline(s) first, then the models as evaluated."""
    baselines = {b for b in card.baseline if isinstance(b, str)}
    first = card.model.isin(baselines).to_numpy()
    return pd.concat([card[first], card[~first]], ignore_index=True)


def _with_summaries(card: pd.DataFrame) -> pd.DataFrame:
    """The card in the order it is read, with ``summary``: one sentence per model."""
    card = _ordered(card)
    baselines = {b for b in card.baseline if isinstance(b, str)}
    card["summary"] = [
        summary({str(k): v for k, v in r.items()}, is_baseline=r["model"] in baselines)
        for r in card.to_dict(orient="records")
    ]
    return card


def _get(row: Mapping[str, Any], key: str) -> Any:
    return row.get(key)


def _present(value: Any) -> bool:
    """Not None, NaN or pd.NA (a row of the typed frame, or of its JSON)."""
    return value is not None and not (pd.api.types.is_scalar(value) and pd.isna(value))


def _listed(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _leaks(row: Mapping[str, Any]) -> bool:
    benign, null = _get(row, "leakage_benign"), _get(row, "leakage_null_q95")
    return _present(benign) and _present(null) and float(benign) > float(null)


def summary(row: Mapping[str, Any], *, is_baseline: bool = False) -> str:
    """One plain sentence that combines a scorecard row's evidence, e.g. "Better globally
    (ΔAUC +0.080), but flagged for segment bias and worse on (S1, Ma): the gain may be the
    shortcut."."""
    verdict = _get(row, "verdict_holm")
    if not _present(_get(row, "baseline")):
        start = "The baseline" if is_baseline else f"AUC {float(row['auc']):.3f} on the whole set"
    else:
        delta = f"ΔAUC {float(row['delta_auc']):+.3f}".replace("-", "−")
        start = {
            "significant increase": f"Better globally ({delta})",
            "significant decrease": f"Worse globally ({delta})",
        }.get(str(verdict), f"No significant difference globally ({delta})")
    concerns = []
    test, validation = _get(row, "segment_bias_test"), _get(row, "segment_bias_validation")
    if "n_runs" in row and _present(test) and int(test) > 0:
        concerns.append(f"flagged for segment bias in {int(test)} of {row['n_runs']} runs")
    elif "n_runs" not in row and _present(test) and bool(test):
        concerns.append("flagged for segment bias")
    elif _present(validation) and bool(validation):
        concerns.append("flagged for segment bias on validation")
    if _leaks(row):
        concerns.append(f"its benign scores tell {row['leakage_segment']} apart")
    worse = _get(row, "n_segments_worse")
    if _present(worse) and int(worse) > 0:
        more = int(worse) - 1
        concerns.append(
            f"worse on {row['worst_segment']}"
            + (f" and {more} more segment{'s' if more > 1 else ''}" if more else "")
        )
    if concerns and verdict == "significant increase":
        return f"{start}, but {_listed(concerns)}: the gain may be the shortcut."
    if concerns:
        return f"{start}; {_listed(concerns)}."
    if not _present(_get(row, "segment_bias_test")) and _present(
        _get(row, "segment_bias_test_reason")
    ):
        return f"{start}; segment bias undefined: {row['segment_bias_test_reason']}."
    return f"{start}; no sign of segment bias."


def cell_tones(row: Mapping[str, Any]) -> dict[str, str]:
    """How the page colours each scorecard cell, by what it says: "good", "bad" or "" (neutral).

    Only what a test or an interval backs is coloured: the Holm verdicts, leakage against its
    permutation null, the segment-bias check. The OP spread is not: the difference between a
    model's spread and the baseline's has no interval, so its cell stays neutral.
    """
    verdict = _get(row, "verdict_holm")
    by_verdict = {"significant increase": "good", "significant decrease": "bad"}
    tones = {"delta": by_verdict.get(str(verdict), ""), "verdict": by_verdict.get(str(verdict), "")}
    for key in ("test", "validation"):
        flag = _get(row, f"segment_bias_{key}")
        tones[f"bias_{key}"] = "" if not _present(flag) else ("bad" if flag else "good")
    null = _get(row, "leakage_null_q95")
    tones["leakage"] = "" if not _present(null) else ("bad" if _leaks(row) else "good")
    worse, better = _get(row, "n_segments_worse"), _get(row, "n_segments_better")
    tones["segments"] = (
        ""
        if not _present(worse)
        else "bad"
        if int(worse) > 0
        else "good"
        if _present(better) and int(better) > 0
        else ""
    )
    tones["worst"] = "bad" if _get(row, "worst_verdict_holm") == "significant decrease" else ""
    return tones
