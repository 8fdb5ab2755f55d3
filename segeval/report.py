"""Render an :class:`~segeval.evaluation.Evaluation` to files: HTML, JSON and CSV tables.

Layers: the evaluation's tables become a JSON-ready context (``report.json`` holds exactly it);
figures are drawn from the same tables and inlined as PNG data URIs; the jinja2 template
(``reports/templates/``, autoescaped) only formats what the context holds. The page requests
nothing from any network: CSS is inline and images are data URIs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from segeval import plots
from segeval.audit import MIN_POSITIVES, DataAudit
from segeval.engine import NULL_PERMUTATIONS
from segeval.evaluation import Evaluation
from segeval.io import json_text, to_jsonable, write_files
from segeval.registry import get_metric
from segeval.scorecard import cell_tones
from segeval.segments import GLOBAL
from segeval.validation import InputError


def fmt(value: Any, digits: int = 3) -> str:
    """How the page prints a number: fixed decimals; NaN/None read "undefined"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def pval(value: Any) -> str:
    """A p-value with four decimals; below 0.0001 it reads "< 0.0001", never "0.0000"."""
    if isinstance(value, float) and 0 <= value < 0.00005:
        return "< 0.0001"
    return fmt(value, 4)


def signed(value: Any, digits: int = 3) -> str:
    """A difference with its sign: "+0.080", "−0.054" (a true minus sign)."""
    text = fmt(value, digits)
    if text == "undefined":
        return text
    return text.replace("-", "−") if text.startswith("-") else "+" + text


def pct(value: Any) -> str:
    """A proportion as a percentage with one decimal."""
    return "undefined" if value is None else f"{100 * value:.1f}%"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("segeval", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["pct"] = pct
    env.filters["pval"] = pval
    env.filters["signed"] = signed
    return env


def report_context(evaluation: Evaluation) -> dict[str, Any]:
    """Every number of the report, JSON-ready; the same dict is written to report.json."""
    return evaluation.to_dict()


def forest_limits(
    metrics: pd.DataFrame, names: Sequence[str] = ("auc", "wll")
) -> dict[str, tuple[float, float]]:
    """One x-range per metric for every model's forest plot, so the models compare by eye."""
    limits = {}
    for metric in names:
        values = metrics[[metric, f"{metric}_ci_low", f"{metric}_ci_high"]].to_numpy(float)
        values = values[np.isfinite(values)]
        if values.size:
            pad = 0.04 * max(values.max() - values.min(), 0.01)
            limits[metric] = (float(values.min() - pad), float(values.max() + pad))
    return limits


def forest_metrics(evaluation: Evaluation) -> list[str]:
    """The metrics of the forest plots: AUC first, then the others in the order evaluated."""
    names = evaluation.settings.get("metrics") or ["wll", "auc"]
    return ["auc", *(n for n in names if n != "auc")]


def figures(evaluation: Evaluation) -> dict[str, dict[str, str]]:
    """Inline PNG figures, per kind and model (``training`` under key ``all``).

    A model with several runs is drawn once, for its first run: 5 seeds of 8 models would
    otherwise put 160 figures (12 MB) into the page; every run is in the tables.
    """
    ev = evaluation
    s = plots.short_names  # names as the figures show them (tables and JSON keep them whole)
    out: dict[str, dict[str, str]] = {"forest": {}, "roc": {}, "op_sync": {}, "scores": {}}
    defined = ev.metrics.dropna(subset=["auc"])
    shown = forest_metrics(ev)
    limits = forest_limits(defined, shown)
    base = ev.baselines.get(GLOBAL)
    for m in (runs[0] for runs in ev.runs.values()):
        mine = defined[defined.model == m]
        if len(mine):
            overlay = defined[defined.model == base] if base and base != m else None
            figure = plots.forest_figure(
                s(mine), plots.short(m), baseline=s(overlay), xlims=limits, metrics_shown=shown
            )
            out["forest"][m] = plots.to_data_uri(figure)
        roc = ev.roc[ev.roc.model == m]
        if len(roc):
            aucs = dict(zip(s(mine).segment, mine.auc, strict=True))
            points = ev.op_points[ev.op_points.model == m]
            figure = plots.roc_figure(s(roc), s(points), plots.short(m), aucs=aucs)
            out["roc"][m] = plots.to_data_uri(figure)
        local = ev.op_points[(ev.op_points.model == m) & (ev.op_points.segment != GLOBAL)]
        if len(local) and len(ev.op_spread):
            spread = ev.op_spread[ev.op_spread.model == m]
            figure = plots.op_sync_figure(s(local), s(spread), plots.short(m))
            out["op_sync"][m] = plots.to_data_uri(figure)
        out["scores"][m] = plots.to_data_uri(
            plots.score_figure(s(ev.score_hist[ev.score_hist.model == m]), plots.short(m))
        )
    if len(ev.training):
        out["training"] = {"all": plots.to_data_uri(plots.training_figure(s(ev.training)))}
    return out


def hints(context: dict[str, Any]) -> list[str]:
    """Advice on the options, read off the context (the data, the settings)."""
    out = []
    table = context["data"]["table"]
    if table and "patients" in table[0] and not context["settings"]["cluster"]:
        out.append(
            "The predictions have a patient_id column, but the bootstrap resamples single "
            "images: images of one patient are not independent, so the intervals may be too "
            "narrow. Resample whole patients with --cluster patient_id."
        )
    return out


# Tables of up to this many rows are part of the page, their header sticky while it scrolls; a
# longer one scrolls in a box of its own (80% of the window high).
SCROLL_ROWS = 300

# Characters of a name (model, segment, run) in the page, and of any other text; report.json and
# the CSVs keep them whole. A 100,000-character name repeated in every row made the page huge.
MAX_NAME, MAX_TEXT = 80, 2000
NAME_KEYS = {
    "model", "baseline", "segment", "worst_segment", "leakage_segment", "run", "models",
    "segments", "baselines", "runs", "on", "label",
}  # fmt: skip


def displayed(value: Any, key: str | None = None) -> Any:
    """The context as the page shows it: names cut at MAX_NAME, other texts at MAX_TEXT."""
    if isinstance(value, dict):
        return {
            displayed(k, key if key in NAME_KEYS else None): displayed(v, k)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [displayed(v, key) for v in value]
    if isinstance(value, str):
        limit = MAX_NAME if key in NAME_KEYS else MAX_TEXT
        return value if len(value) <= limit else value[: limit - 1] + "…"
    return value


def render_html(context: dict[str, Any], images: dict[str, dict[str, str]]) -> str:
    """The report page for a context from :func:`report_context` and :func:`figures`."""
    context = displayed(context)
    images = {
        kind: {displayed(m, "model"): uri for m, uri in by.items()} for kind, by in images.items()
    }
    by_model = {
        key: {m: [r for r in context[key] if r["model"] == m] for m in context["models"]}
        for key in ("metrics", "op_spread", "op_points")
    }
    comparisons = context["comparisons"]
    # Global rows first, then segment by segment, in the models' order.
    order = {m: k for k, m in enumerate(context["models"])}
    ordered = sorted(
        comparisons,
        key=lambda r: (r["segment"] != GLOBAL, r["segment"], order[r["model"]]),
    )
    # With runs, the scorecard compares models over their runs: its baseline is a model too.
    compared = context["recipe_comparisons"] or comparisons
    baselines = {r["baseline"] for r in compared}
    specs = [get_metric(name) for name in context["settings"].get("metrics", ["wll", "auc"])]
    where = {"validation": "segment_bias_validation", "test": "segment_bias_test"}
    flags = {r["model"]: [w for w, key in where.items() if r[key]] for r in context["scorecard"]}
    card = context["scorecard"]
    # Warning signs first, together: 4 red lines among 14 green ones were easy to miss.
    signs = [d for d in context["diagnostics"] if d["suspicious"]]
    passed = [d for d in context["diagnostics"] if not d["suspicious"]]
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            **context,
            by_model=by_model,
            images=images,
            global_name=GLOBAL,
            comparison_rows=ordered,
            one_baseline=next(iter(baselines)) if len(baselines) == 1 else None,
            baseline_models={*context["baselines"].values(), *baselines},
            bias_flags=flags,
            tones=[cell_tones(r) for r in card],
            diagnostics_signs=signs,
            diagnostics_passed=passed,
            metric_specs=specs,
            headline_specs=[spec for spec in specs if spec.headline],
            metric_labels={spec.name: spec.label for spec in specs},
            hints=hints(context),
            min_positives=MIN_POSITIVES,
            null_permutations=NULL_PERMUTATIONS,
            scroll_rows=SCROLL_ROWS,
        )
    )


def render_audit_html(audit: DataAudit, source: str) -> str:
    """A standalone page with the data table and warnings of :func:`segeval.audit.audit_data`."""
    data = to_jsonable({"table": audit.table, "warnings": list(audit.warnings)})
    return (
        _environment()
        .get_template("audit.html.j2")
        .render(data=data, source=source, global_name=GLOBAL)
    )


def write_report(evaluation: Evaluation, out: str | Path) -> list[Path]:
    """Write ``out`` (HTML), and beside it ``<stem>.json`` and ``<stem>_<table>.csv``.

    Returns the paths written. The set replaces an older report of the same name whole or not
    at all: everything is rendered and written to temporary files first, then moved into place,
    and the older set's tables that this one lacks are removed (a failure leaves the older set
    whole).
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"The report must be an .html file; got {str(out)!r}.")
    context = report_context(evaluation)
    files: dict[Path, str] = {out.with_suffix(".json"): json_text(context)}
    tables: dict[str, pd.DataFrame] = {
        "scorecard": evaluation.scorecard,
        "data": evaluation.data,
        "metrics": evaluation.metrics,
        "comparisons": evaluation.comparisons,
        "deltas": evaluation.deltas,
        "op_points": evaluation.op_points,
        "op_spread": evaluation.op_spread,
        "diagnostics": evaluation.diagnostics,
        "leakage": evaluation.leakage,
        "leakage_runs": evaluation.leakage_runs,
        "recipe_comparisons": evaluation.recipe_comparisons,
        "run_deltas": evaluation.run_deltas,
        "discovery": evaluation.discovery,
    }
    for name, table in tables.items():
        if len(table):
            files[out.with_name(f"{out.stem}_{name}.csv")] = table.to_csv(index=False)
    files[out] = render_html(context, figures(evaluation))
    stale = [out.with_name(f"{out.stem}_{name}.csv") for name in tables]
    write_files(files, remove=[p for p in stale if p not in files and p.exists()])
    return [out, *(p for p in files if p != out)]
