"""Render an :class:`~segeval.evaluate.Evaluation` to files: HTML, JSON and CSV tables.

The HTML is a jinja2 template (``reports/templates/``, installed as ``segeval.templates``) with
autoescaping on; it only formats the numbers that ``report.json`` holds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2

from segeval.evaluate import Evaluation
from segeval.io import to_jsonable, write_csv, write_json, write_text


def _fmt(value: Any, digits: int = 3) -> str:
    """Numbers to a fixed number of decimals; NaN reads "undefined"."""
    if value is None:
        return "undefined"
    if isinstance(value, float):
        return "undefined" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("segeval", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = _fmt
    return env


def report_context(evaluation: Evaluation) -> dict[str, Any]:
    """The JSON-ready content of a report: the same numbers feed report.json and the HTML."""
    context: dict[str, Any] = to_jsonable(
        {
            "models": list(evaluation.models),
            "baseline": evaluation.baseline,
            "segments": list(evaluation.segments),
            "settings": evaluation.settings,
            "metrics": evaluation.metrics,
            "comparisons": evaluation.comparisons,
        }
    )
    return context


def render_html(context: dict[str, Any]) -> str:
    """The report page for a context from :func:`report_context`."""
    return _environment().get_template("report.html.j2").render(**context)


def write_report(evaluation: Evaluation, out: str | Path) -> list[Path]:
    """Write ``out`` (HTML), and beside it ``<stem>.json`` and ``<stem>_<table>.csv``.

    Returns the paths written. Each file is written atomically.
    """
    out = Path(out)
    context = report_context(evaluation)
    paths = [out.with_suffix(".json"), out.with_name(f"{out.stem}_metrics.csv")]
    write_json(paths[0], context)
    write_csv(paths[1], evaluation.metrics)
    if len(evaluation.comparisons):
        paths.append(out.with_name(f"{out.stem}_comparisons.csv"))
        write_csv(paths[-1], evaluation.comparisons)
    write_text(out, render_html(context))
    return [out, *paths]
