"""What ``segtrain pretrain`` shows: a text summary and a small self-contained page.

Both read the validation records of ``metrics.jsonl``: at every validation step the WLL per
lesion, the macro one-vs-rest AUC, the accuracy and the per-class accuracy; for the best step
(lowest WLL), the confusion matrix.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from segeval.io import write_text
from segtrain.lesions import LESION_CLASSES


def best_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The record of lowest validation WLL (the step of ``best.pt``)."""
    finite = [r for r in records if r["wll"] is not None and math.isfinite(r["wll"])]
    return min(finite or records, key=lambda r: r["wll"] if r in finite else math.inf)


def _num(value: Any) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.3f}"
    )


def summary(records: list[dict[str, Any]]) -> str:
    """A few lines: the best step's metrics and confusion matrix."""
    best = best_record(records)
    lines = [
        f"best step {best['step']}: WLL/lesion {_num(best['wll'])}, macro one-vs-rest AUC "
        f"{_num(best['auc'])}, accuracy {_num(best['accuracy'])}",
        "per class (validation patches, accuracy):",
    ]
    for name in LESION_CLASSES:
        lines.append(f"  {name:<24} {best['n'][name]:>5}  {_num(best['per_class_accuracy'][name])}")
    lines.append("confusion matrix (rows: true class, columns: predicted, in the order above):")
    lines += ["  " + " ".join(f"{v:>5}" for v in row) for row in best["confusion"]]
    return "\n".join(lines)


def write_report(out: Path, records: list[dict[str, Any]]) -> None:
    """``out/report.html``: the validation curve as a table, and the best step in detail."""
    best = best_record(records)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in LESION_CLASSES)
    rows = "".join(
        f"<tr{' class=best' if r is best else ''}><td>{r['step']}</td><td>{_num(r['wll'])}</td>"
        f"<td>{_num(r['loss'])}</td><td>{_num(r['auc'])}</td><td>{_num(r['accuracy'])}</td>"
        + "".join(f"<td>{_num(r['per_class_accuracy'][n])}</td>" for n in LESION_CLASSES)
        + "</tr>"
        for r in records
    )
    confusion = "".join(
        f"<tr><th>{html.escape(name)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
        for name, row in zip(LESION_CLASSES, best["confusion"], strict=True)
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Backbone pre-training: {html.escape(out.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
tr.best{{background:#e8f3e8}}</style>
</head><body>
<h1>Backbone pre-training: {html.escape(out.name)}</h1>
<p>Validation of the EMA weights on the validation patients' patches. WLL/lesion: log loss with
every class weighted equally (the paper's validation loss; the lowest gives <code>best.pt</code>).
AUC: macro one-vs-rest. Per class: the share of its patches classified as it (recall).</p>
<h2 id="curve">Validation steps</h2>
<table><tr><th>step</th><th>WLL/lesion</th><th>log loss</th><th>AUC</th><th>accuracy</th>{head}</tr>
{rows}</table>
<h2 id="confusion">Confusion matrix at step {best["step"]} (best)</h2>
<table><tr><th>true \\ predicted</th>{head}</tr>{confusion}</table>
</body></html>
"""
    write_text(out / "report.html", page)
