"""The HTML report: every section, the same numbers as report.json, safe and offline."""

from __future__ import annotations

import json
import os
import re
import warnings
from html.parser import HTMLParser

import markupsafe
import numpy as np
import pandas as pd
import pytest
from conftest import run_inputs

import segeval as se
from segeval import report as report_module
from segeval.evaluation import evaluate
from segeval.io import to_jsonable
from segeval.report import fmt, pct, pval, signed, write_report
from segeval.scorecard import cell_tones, summary
from segeval.synthetic import make_predictions
from segeval.validation import InputError

SECTIONS = (
    "scorecard",
    "warnings",
    "diagnostics",
    "data",
    "metrics",
    "comparison",
    "roc",
    "sync",
    "scores",
    "training",
    "provenance",
)


class Tables(HTMLParser):
    """Every <table> of a page as a list of rows of cell texts, plus every src/href."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.links: list[str] = []
        self.ids: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "span" and self._cell is not None:
            self._cell.append(" ")  # a CI or p-value on its own line reads as its own word

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def write_metrics_log(run_dir, seed):
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True)
    with (run_dir / "metrics.jsonl").open("w") as f:
        for step in (100, 200, 300):
            for segment in ("__global__", "(S1, Ma)", "(S2, Ma)"):
                f.write(
                    json.dumps(
                        {
                            "step": step,
                            "segment": segment,
                            "wll": rng.random(),
                            "auc": rng.random(),
                            "n_pos": 5,
                            "n_neg": 50,
                        }
                    )
                    + "\n"
                )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    for name, seed in (("periodic_run", 1), ("bal_labels_run", 2)):
        write_metrics_log(tmp / name, seed)
    ev = evaluate(
        make_predictions(scale=0.1, seed=3),
        segment_by="source,manufacturer",
        baseline="single_segment",
        **run_inputs([tmp / "periodic_run", tmp / "bal_labels_run"]),
        n_boot=60,
        seed=0,
    )
    write_report(ev, tmp / "report.html")
    page = Tables()
    page.feed((tmp / "report.html").read_text())
    return ev, json.loads((tmp / "report.json").read_text()), page, tmp


def test_every_section_is_present(report):
    _, data, page, _ = report
    assert set(SECTIONS) <= set(page.ids)
    assert data["training"] and data["roc"] and data["score_hist"]


def metric_tables(page):
    return [t for t in page.tables if t[0][:3] == ["segment", "n", "n_pos"]]


def test_metric_tables_show_the_json_numbers(report):
    _, data, page, _ = report
    tables = metric_tables(page)
    assert len(tables) == len(data["models"])
    for model, table in zip(data["models"], tables, strict=True):
        rows = [r for r in data["metrics"] if r["model"] == model]
        assert len(table) - 1 == len(rows)
        for shown, r in zip(table[1:], rows, strict=True):
            assert shown[:9] == [
                "global" if r["segment"] == "__global__" else r["segment"],
                str(r["n"]),
                str(r["n_pos"]),
                str(r["n_neg"]),
                pct(r["prevalence"]),
                fmt(r["wll"]),
                f"{fmt(r['wll_ci_low'])} – {fmt(r['wll_ci_high'])}",
                fmt(r["auc"]),
                f"{fmt(r['auc_ci_low'])} – {fmt(r['auc_ci_high'])}",
            ]


def test_comparison_table_shows_the_json_numbers(report):
    _, data, page, _ = report
    (table,) = [t for t in page.tables if t[0][:2] == ["segment", "method"]]
    assert "baseline" not in table[0][2]  # one baseline for all: named once, not on every row
    shown = {(row[0], row[1]): row for row in table[1:]}
    assert len(shown) == len(data["comparisons"]) == 2 * 6
    assert [row[0] for row in table[1:3]] == ["global", "global"]  # the whole set first
    flagged = {r["model"] for r in data["scorecard"] if r["segment_bias_test"]}
    for r in data["comparisons"]:
        row = shown[("global" if r["segment"] == "__global__" else r["segment"], r["model"])]
        ci = f"({signed(r['delta_ci_low'])}, {signed(r['delta_ci_high'])})"
        assert row[2] == f"{signed(r['delta_auc'])} {ci}"
        bias = " segment-biased (test)" if r["model"] in flagged and row[0] == "global" else ""
        assert row[3] == f"{r['verdict_holm']} {pval(r['p_holm'])}{bias}"
        assert row[4] == f"{r['verdict']} {pval(r['p_value'])}"
        assert row[5] == f"{fmt(r['auc'])} ({fmt(r['auc_ci_low'])}, {fmt(r['auc_ci_high'])})"
        assert row[6] == (
            f"{fmt(r['auc_baseline'])} ({fmt(r['auc_baseline_ci_low'])}, "
            f"{fmt(r['auc_baseline_ci_high'])})"
        )
        assert row[7] == f"{pval(r['p_value_bootstrap'])} {pval(r['p_value_delong'])}"


def test_scorecard_shows_the_json_numbers(report):
    ev, data, page, _ = report
    table = page.tables[0]  # the first screen: the scorecard comes before every other table
    assert table[0][0] == "model"
    assert data["scorecard"] == to_jsonable(ev.scorecard)
    base = "single_segment"  # the baseline first, then the models as evaluated
    assert [row[0].split()[0] for row in table[1:]] == [
        base,
        *(m for m in data["models"] if m != base),
    ]
    for row, r in zip(table[1:], data["scorecard"], strict=True):
        assert row[1] == f"{fmt(r['auc'])} ({fmt(r['auc_ci_low'])}, {fmt(r['auc_ci_high'])})"
        if r["baseline"] is None:
            assert row[2] == "the baseline"
            continue
        ci = f"({signed(r['delta_ci_low'])}, {signed(r['delta_ci_high'])})"
        assert row[2] == f"{signed(r['delta_auc'])} {ci}"
        assert row[3].startswith(f"{r['verdict_holm']} p Holm {pval(r['p_holm'])}")
        bias = [r["segment_bias_validation"], r["segment_bias_test"]]
        assert r["segment_bias_test"] is not None  # five segments: the check is defined
        assert row[4] == " / ".join(
            "no log" if b is None else "flagged" if b else "no" for b in bias
        )
        null = f"{r['leakage_null_q95']:.2f}"  # its permutation error is about 0.01
        assert row[5] == f"{fmt(r['leakage_benign'])} {r['leakage_segment']} null {null}"
        better, worse, n = (r[f"n_segments_{k}"] for k in ("better", "worse", "compared"))
        assert row[6] == f"{better} / {worse} of {n}"
        worst = f"{r['worst_segment']} {signed(r['worst_delta_auc'])}, {r['worst_verdict_holm']}"
        assert row[7] == worst
        assert row[8] == f"{fmt(r['op_spread_max'])} at t = {r['op_spread_threshold']}"


def test_scorecard_counts_the_holm_verdicts(report):
    ev, _, _, _ = report
    card = ev.scorecard.set_index("model")
    for model, rows in ev.comparisons[ev.comparisons.segment != "__global__"].groupby("model"):
        assert card.n_segments_worse[model] == (rows.verdict_holm == "significant decrease").sum()
        assert card.n_segments_better[model] == (rows.verdict_holm == "significant increase").sum()
        assert card.worst_delta_auc[model] in set(rows.delta_auc)
        whole = ev.metrics[(ev.metrics.model == model) & (ev.metrics.segment == "__global__")]
        assert card.auc[model] == whole.auc.iloc[0]
    assert card.baseline.isna()["single_segment"]
    # bal_labels trains on the segment: flagged on the test set; runs named by the model only
    assert card.segment_bias_test["bal_labels"] and not card.segment_bias_test["periodic"]
    assert card.segment_bias_validation.isna().all()


def test_data_and_spread_tables_show_the_json_numbers(report):
    _, data, page, _ = report
    (table,) = [t for t in page.tables if t[0][:3] == ["segment", "images", "benign"]]
    for shown, r in zip(table[1:], data["data"]["table"], strict=True):
        assert shown[1:5] == [
            str(r["n"]),
            str(r["benign"]),
            str(r["malignant"]),
            pct(r["prevalence"]),
        ]
    spreads = [t for t in page.tables if t[0][:2] == ["threshold", "spread"]]
    assert len(spreads) == len(data["models"])
    rows = [r for r in data["op_spread"] if r["model"] == data["models"][0]]
    for shown, r in zip(spreads[0][1:], rows, strict=True):
        assert shown[1:3] == [fmt(r["spread"]), f"{fmt(r['ci_low'])} – {fmt(r['ci_high'])}"]


def test_page_is_self_contained(report):
    _, _, page, tmp = report
    html = (tmp / "report.html").read_text()
    assert page.links, "the page has images"
    for link in page.links:
        assert link.startswith(("data:image/png;base64,", "#")), link[:60]
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "<script" not in html


def test_colours_follow_holm_and_data_warnings_appear_once(report):
    _, data, _, tmp = report
    html = (tmp / "report.html").read_text()
    rows = data["comparisons"]  # the scorecard colours cells, not rows
    for kind in ("increase", "decrease"):
        holm = [r for r in rows if r["verdict_holm"] == f"significant {kind}"]
        assert len(re.findall(f'<tr class="{kind}[ "]', html)) == len(holm)
    flagged = {d["model"]: d["suspicious"] for d in data["diagnostics"]}
    assert flagged["bal_labels"] is True and flagged["periodic"] is False
    assert "Suspiciously good global metrics" in html
    for warning in data["data"]["warnings"]:
        assert html.count(str(markupsafe.escape(warning))) == 1
    # issue 23: the red lines together at the top of the list, then the passed checks
    items = re.findall(r'<li class="(warn|ok|undefined)">', html)
    assert items == sorted(items, key=lambda c: c != "warn") and "ok" in items


def test_scorecard_colours_each_cell_and_sums_up_each_model(report):
    """Issue 23: the shortcut model's row is not green because its global verdict is a gain."""
    ev, data, _, tmp = report
    card = ev.scorecard.set_index("model")
    shortcut = card.loc["bal_labels"]
    assert shortcut.segment_bias_test and shortcut.verdict_holm == "not significant"
    assert shortcut.summary.startswith("No significant difference globally (ΔAUC +")
    assert "flagged for segment bias" in shortcut.summary
    gain = dict(shortcut, verdict_holm="significant increase", n_segments_worse=2)
    assert summary(gain) == (
        f"Better globally (ΔAUC {signed(shortcut.delta_auc)}), but flagged for segment bias"
        + (
            f", its benign scores tell {shortcut.leakage_segment} apart"
            if "tell" in shortcut.summary
            else ""
        )
        + f" and worse on {shortcut.worst_segment} and 1 more segment:"
        + " the gain may be the shortcut."
    )
    assert card.loc["single_segment"].summary.startswith("The baseline")
    assert "no sign of segment bias" in card.loc["periodic"].summary
    html = (tmp / "report.html").read_text()
    first = html[html.index('<table class="scorecard"') :]
    rows = first[: first.index("</table>")].split("<tr>")[2:]
    shown = {re.search(r'class="text model">([^ <]+)', r)[1]: r for r in rows}
    assert '<td class="text model">bal_labels' in shown["bal_labels"]  # the name is not coloured
    assert '<td class="text verdict ">not significant' in shown["bal_labels"]
    assert '<span class="bad">flagged</span>' in shown["bal_labels"]
    assert '<span class="good">no</span>' in shown["periodic"]
    leak = "bad" if shortcut.leakage_benign > shortcut.leakage_null_q95 else "good"
    assert f'<td class="{leak}">{fmt(shortcut.leakage_benign)}' in shown["bal_labels"]
    for r in data["scorecard"]:
        assert f"<li><b>{r['model']}</b>: {markupsafe.escape(r['summary'])}</li>" in html
    assert 'tr class="increase' not in first[: first.index("</table>")]


def test_the_op_spread_is_not_coloured_against_the_baseline(report):
    """A spread above the baseline's was red, below green, though the difference has no CI."""
    _, data, _, tmp = report
    html = (tmp / "report.html").read_text()
    first = html[html.index('<table class="scorecard"') :]
    cells = re.findall(r'<td class="op-spread[^"]*"[^>]*>', first[: first.index("</table>")])
    assert len(cells) == len(data["scorecard"])
    assert not any(" good" in c or " bad" in c for c in cells), cells
    defined = [c for c, r in zip(cells, data["scorecard"], strict=True) if r["op_spread_max"]]
    assert defined and all('title="Not coloured: ' in c for c in defined)
    assert all("op_spread" not in cell_tones(r) for r in data["scorecard"])


def test_only_a_huge_table_scrolls_in_a_box_of_its_own(report, monkeypatch):
    """A 42-row comparison sat in a 36rem box that cut a row at its lower edge."""
    _, data, _, tmp = report
    page = (tmp / "report.html").read_text()
    assert 'class="scroll"' not in page and "scrolls in its box" not in page
    monkeypatch.setattr(report_module, "SCROLL_ROWS", 5)
    images = {"forest": {}, "roc": {}, "op_sync": {}, "scores": {}, "training": {"all": ""}}
    boxed = report_module.render_html(data, images)
    comparison = boxed[boxed.index('<h2 id="comparison">') :]
    assert f"{len(data['comparisons'])} rows: the table scrolls in its box" in comparison
    assert '<div class="scroll">\n<table class="comparison">' in comparison


def test_p_values_below_the_fourth_decimal_are_not_zero():
    assert pval(3e-8) == "< 0.0001" and pval(0.00012) == "0.0001" and pval(0.5) == "0.5000"
    assert pval(float("nan")) == "undefined"
    assert signed(-0.054) == "−0.054" and signed(0.08) == "+0.080"


def test_header_and_json_carry_the_provenance(report):
    _, data, _, tmp = report
    html = (tmp / "report.html").read_text()
    prov = data["provenance"]
    assert prov["segeval_version"] == se.__version__ and prov["date"] in html
    # evaluate() takes frames and reads no file: the CLI records the run folders it read
    # (tests/test_segeval_cli.py); from Python the inputs are the table in memory.
    assert [f["role"] for f in prov["inputs"]] == ["predictions"]
    assert data["settings"]["n_boot"] == 60


def test_csv_tables_match_the_json(report):
    _, data, _, tmp = report
    metrics = pd.read_csv(tmp / "report_metrics.csv")
    np.testing.assert_allclose(metrics.auc, [r["auc"] for r in data["metrics"]])
    assert (tmp / "report_comparisons.csv").exists() and (tmp / "report_op_spread.csv").exists()


def test_segment_names_are_escaped(tmp_path):
    evil = '<script>alert("x")</script>'
    ev = evaluate(tiny_preds([evil, "ok"]), segment_by="site", baseline="A", n_boot=20)
    html = write_report(ev, tmp_path / "r.html")[0].read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert evil in json.loads((tmp_path / "r.json").read_text())["segments"]


def tiny_preds(segment_names, n=20, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for name in segment_names:
        y = np.array([0, 1] * (n // 2))
        for model in ("A", "B"):
            rows.append(
                pd.DataFrame(
                    {
                        "image_id": [f"{name}-{k}" for k in range(n)],
                        "model": model,
                        "label": y,
                        "score": rng.random(n),
                        "site": name,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_one_class_segment_renders_undefined_with_reason(tmp_path):
    preds = tiny_preds(["S1", "S2"])
    preds.loc[preds.site == "S2", "label"] = 0
    with pytest.warns(se.UndefinedMetricWarning, match="Segment S2 has no malignant images"):
        ev = evaluate(preds, segment_by="site", baseline="A", n_boot=20)
    html = write_report(ev, tmp_path / "r.html")[0].read_text()
    page = Tables()
    page.feed(html)
    reason = "Segment S2 has no malignant images (label 1): its WLL and AUC are undefined."
    for table in metric_tables(page):
        (row,) = [r for r in table if r[0] == "S2"]
        assert row[5:] == [f"undefined: {reason}"]  # said once, with the reason
    assert "y_true" not in html
    data = json.loads((tmp_path / "r.json").read_text())
    s2 = next(r for r in data["metrics"] if r["segment"] == "S2")
    assert s2["auc"] is None  # NaN is written as null, never as an invalid JSON token
    row = next(r for r in data["comparisons"] if r["segment"] == "S2")
    assert row["verdict"] == "undefined"


def test_five_hundred_segments_render(tmp_path):
    names = [f"site{k:03d}" for k in range(500)]
    # With 6 images a segment, some segment loses a class in every resample: no spread CI.
    with pytest.warns(
        se.UndefinedMetricWarning, match=r"OP spread at threshold 0\.[2468] is undefined"
    ):
        ev = evaluate(tiny_preds(names, n=6), segment_by="site", baseline="A", n_boot=5)
    out = write_report(ev, tmp_path / "r.html")[0]
    html = out.read_text()
    assert html.count("site499") >= 3
    assert out.stat().st_size < 5_000_000
    assert re.search(r'class="scroll"', html)  # long tables scroll instead of stretching


def test_scorecard_says_undefined_when_no_spread_can_be_measured(tmp_path):
    ev = evaluate(tiny_preds(["S1"]), segment_by="site", baseline="A", n_boot=20)
    assert ev.scorecard.op_spread_max.isna().all()
    html = write_report(ev, tmp_path / "r.html")[0].read_text()
    assert "undefined" in html and "fewer than two segments with both classes" in html
    assert "--cluster patient_id" not in html  # no patient_id column: no hint


@pytest.mark.parametrize("segment_by", ["site", None], ids=["one segment", "no segments"])
def test_segment_bias_reads_undefined_when_it_cannot_be_judged(tmp_path, segment_by):
    """Issue 23: "no" needs two segments with both classes; otherwise undefined, with why."""
    ev = evaluate(tiny_preds(["S1"]), segment_by=segment_by, baseline="A", n_boot=20)
    why = "no segments (segment_by not given)" if segment_by is None else "fewer than two"
    assert ev.scorecard.segment_bias_test.isna().all()
    assert ev.scorecard.segment_bias_test_reason.str.startswith(why).all()
    write_report(ev, tmp_path / "r.html")
    data = json.loads((tmp_path / "r.json").read_text())
    assert {r["segment_bias_test"] for r in data["scorecard"]} == {None}
    assert (tmp_path / "r_scorecard.csv").read_text().count(f",{why}") == 2  # reason column
    page = Tables()
    page.feed((tmp_path / "r.html").read_text())
    for row in page.tables[0][1:]:  # the baseline's row has one cell fewer (colspan)
        (bias,) = [cell for cell in row if cell.startswith("no log /")]
        assert bias == "no log / undefined", bias
    html = (tmp_path / "r.html").read_text()
    assert html.count(f"segment bias undefined: {why}") == 2  # the sentence of each model
    assert '<li class="undefined">' in html and '<li class="ok">' not in html


def _report_set(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_report_set_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """Issue 24: no stale tables of an older set beside the new one; a failure while moving the
    new set into place leaves the older set as it was; a directory as --out writes nothing."""
    p = make_predictions(scale=0.05, seed=2)
    rng = np.random.default_rng(0)
    with_runs = pd.concat(
        [p.assign(run=r, score=np.clip(p.score + rng.normal(0, 0.02, len(p)), 0, 1))
         for r in range(2)], ignore_index=True,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = evaluate(with_runs, segment_by="source", baseline="single_segment", n_boot=10)
        plain = evaluate(p, segment_by="source", baseline="single_segment", n_boot=10)
    out = tmp_path / "r.html"
    write_report(runs, out)
    assert "r_recipe_comparisons.csv" in _report_set(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in _report_set(tmp_path)}
    import segeval.io as io_module

    real_replace = os.replace

    def failing(src, dst):
        if str(dst).endswith("r.html") and ".tmp" in str(src) and ".old" not in str(src):
            raise PermissionError("cannot replace the HTML")
        return real_replace(src, dst)

    monkeypatch.setattr(io_module.os, "replace", failing)
    with pytest.raises(PermissionError):
        write_report(plain, out)
    monkeypatch.undo()
    assert {n: (tmp_path / n).read_bytes() for n in _report_set(tmp_path)} == before
    written = write_report(plain, out)
    assert sorted(p.name for p in written) == _report_set(tmp_path)  # stale tables removed
    assert "r_recipe_comparisons.csv" not in _report_set(tmp_path)
    folder = tmp_path / "dir.html"
    folder.mkdir()
    with pytest.raises(InputError, match="is a directory; give a file name"):
        write_report(plain, folder)
    assert list(folder.iterdir()) == []
    assert set(_report_set(tmp_path)) == {p.name for p in written} | {"dir.html"}
    with pytest.raises(InputError, match=r"must be an \.html file; got '\.'"):
        plain.write("")
