"""A real browser opens the report: it renders, logs no console error, requests nothing.

Headless Chromium (Debian's ``chromium``, installed by ``.ci/run``) loads the page with every
connection sent to a local proxy that records it, and with console messages logged to stderr.
Screenshots are kept in ``test-artifacts/`` (the whole page, and the first screen at 1400 and 900
px wide); the layout is measured by a script injected into a copy of the page. The detector itself
is tested on a page that makes a request and logs an error, so a silent pass cannot come from a
blind check.
"""

from __future__ import annotations

import html
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segeval.evaluation import evaluate
from segeval.report import fmt, pval, signed, write_report
from segeval.synthetic import make_predictions

ARTIFACTS = Path(os.environ.get("SEGEVAL_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
# Traffic of the browser itself (component updates, sign-in), not of the page.
BROWSER_HOSTS = (
    "update.googleapis.com",
    "accounts.google.com",
    "clients2.google.com",
    "clientservices.googleapis.com",
    "redirector.gvt1.com",
    "edgedl.me.gvt1.com",
)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Chromium is not installed: .ci/run installs Debian's chromium package"
    return path


class Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def _record(self) -> None:
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_CONNECT = _record

    def log_message(self, *args: object) -> None:
        pass


def open_in_browser(
    page: Path, tmp: Path, screenshot: Path | None = None, size: tuple[int, int] = (1300, 3000)
) -> tuple[list[str], list[str], str]:
    """Page requests (browser traffic excluded), console lines, and the rendered DOM."""
    Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    flags = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        f"--user-data-dir={tmp / 'profile'}",
        f"--proxy-server=http://127.0.0.1:{server.server_address[1]}",
        "--proxy-bypass-list=<-loopback>",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={size[0]},{size[1]}",
    ]
    try:
        done = subprocess.run(
            [*flags, "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        if screenshot is not None:
            subprocess.run(
                [*flags, f"--screenshot={screenshot}", page.as_uri()],
                capture_output=True,
                timeout=120,
                check=True,
            )
    finally:
        server.shutdown()
    requests = [h for h in Recorder.hits if not any(host in h for host in BROWSER_HOSTS)]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return requests, console, done.stdout


def test_the_detector_sees_requests_and_console_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><img src="http://example.com/x.png">'
        '<script>console.error("boom")</script></body></html>'
    )
    requests, console, _ = open_in_browser(bad, tmp_path)
    assert any("example.com/x.png" in r for r in requests)
    assert any("boom" in line for line in console)


def test_report_renders_offline_without_errors(tmp_path):
    ev = evaluate(
        make_predictions(scale=0.2, seed=0),
        segment_by="source,manufacturer",
        baseline="single_segment",
        n_boot=50,
    )
    page = write_report(ev, tmp_path / "report.html")[0]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    requests, console, dom = open_in_browser(page, tmp_path, screenshot=shot)
    assert requests == []
    assert console == []
    assert "Comparison to the baseline" in dom and dom.count("<img") >= 4 * len(ev.models)
    assert shot.stat().st_size > 10_000


def measure(page: Path, folder: Path, script: str, size: tuple[int, int], name: str = "probe"):
    """Open a copy of ``page`` with ``script`` injected (the report itself has no script):
    JavaScript that sets ``out``. Returns the console's messages and ``out`` as computed."""
    code = f"""<script>{script}
const pre = document.createElement("pre");
pre.id = "measure";
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""
    probe = folder / f"{name}.html"
    probe.write_text(page.read_text().replace("</body>", code + "</body>"))
    _, console, dom = open_in_browser(probe, folder, size=size)
    return console, json.loads(html.unescape(re.search(r'<pre id="measure">(.*?)</pre>', dom)[1]))


# Measures the layout and reads the cells as the browser renders them.
MEASURE = """
const box = e => e.getBoundingClientRect();
const card = document.querySelector("table.scorecard");
const cells = t => [...t.rows].map(r => [...r.cells].map(c => c.innerText.split(/\\s+/).join(" ")));
const out = {
  innerWidth: window.innerWidth,
  clientWidth: document.documentElement.clientWidth,
  scrollWidth: document.documentElement.scrollWidth,
  scorecardBottom: box(card).bottom + window.scrollY,
  verdictRight: Math.max(...[...document.querySelectorAll("td.verdict")].map(e => box(e).right)),
  overflowing: [...document.querySelectorAll("body *")]
    .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible")
    .map(e => e.tagName + "." + e.className),
  scorecard: cells(card),
  comparison: cells(document.querySelector("table.comparison")),
};
"""


def more_models(preds, n):
    """``n`` more models: noisy copies of the synthetic ones (as many as the demo compares)."""
    rng = np.random.default_rng(1)
    copies = []
    for k in range(n):
        copy = preds[preds.model == ("periodic", "bal_labels")[k % 2]].copy()
        copy["model"] = f"exp{k}_{copy.model.iloc[0]}"
        copy["score"] = np.clip(copy.score + rng.normal(0, 0.05, len(copy)), 0, 1)
        copies.append(copy)
    return pd.concat([preds, *copies], ignore_index=True)


@pytest.fixture(scope="module", params=[3, 8], ids=["3 models", "8 models"])
def quick_report(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("quick")
    ev = evaluate(
        more_models(make_predictions(scale=0.2, seed=0), request.param - 3),
        segment_by="source,manufacturer",
        baseline="single_segment",
        n_boot=50,
    )
    page = write_report(ev, tmp / "report.html")[0]
    return page, json.loads(page.with_suffix(".json").read_text()), tmp


@pytest.mark.parametrize("width", [1400, 900])
def test_first_screen_shows_the_scorecard_without_sideways_scrolling(quick_report, width):
    page, data, tmp = quick_report
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"report_{len(data['models'])}models_{width}.png"
    _, console, _ = open_in_browser(page, tmp, screenshot=shot, size=(width, 900))
    assert console == [] and shot.stat().st_size > 10_000
    _, measured = measure(page, tmp, MEASURE, (width, 900), f"probe_{width}")
    assert measured["innerWidth"] == width
    assert measured["scorecardBottom"] <= 900, "the scorecard is the first screen"
    assert measured["scrollWidth"] <= measured["clientWidth"] <= measured["innerWidth"]
    assert measured["verdictRight"] <= measured["clientWidth"], "verdicts visible, no scroll"
    assert measured["overflowing"] == [], "no table hides columns behind a scroll bar"
    # What the browser shows is what report.json holds.
    for row, r in zip(measured["scorecard"][1:], data["scorecard"], strict=True):
        assert row[0].split()[0] == r["model"]
        assert row[1] == f"{fmt(r['auc'])} ({fmt(r['auc_ci_low'])}, {fmt(r['auc_ci_high'])})"
        if r["baseline"] is not None:
            assert row[2] == f"{signed(r['delta_auc'])} ({signed(r['delta_ci_low'])}, " + (
                f"{signed(r['delta_ci_high'])})"
            )
            assert row[3].startswith(f"{r['verdict_holm']} p Holm {pval(r['p_holm'])}")
    shown = {(row[0], row[1]): row for row in measured["comparison"][1:]}
    for r in data["comparisons"]:
        row = shown[("global" if r["segment"] == "__global__" else r["segment"], r["model"])]
        assert row[2] == f"{signed(r['delta_auc'])} ({signed(r['delta_ci_low'])}, " + (
            f"{signed(r['delta_ci_high'])})"
        )
        assert row[3].startswith(f"{r['verdict_holm']} {pval(r['p_holm'])}")


# Scrolls the page to the middle of the comparison table, then measures: rows cut by a box
# around the table, boxes of the page that scroll on their own, and where the header is.
SCROLLED = """
const table = document.querySelector("table.comparison");
const rows = [...table.rows];
const cut = [];
for (let a = table.parentElement; a && a !== document.body; a = a.parentElement) {
  if (getComputedStyle(a).overflowY === "visible") continue;
  const box = a.getBoundingClientRect();
  const outside = rows.filter(r => {
    const b = r.getBoundingClientRect();
    return b.bottom > box.bottom + 0.5 || b.top < box.top - 0.5;
  });
  if (outside.length) cut.push(`${a.tagName}.${a.className}: ${outside.length} rows`);
}
const inner = [...document.querySelectorAll("body *")]
  .filter(e => ["auto", "scroll"].includes(getComputedStyle(e).overflowY))
  .filter(e => e.scrollHeight > e.clientHeight + 1)
  .map(e => e.tagName + "." + e.className);
window.scrollTo(0, rows[Math.floor(rows.length / 2)].getBoundingClientRect().top + scrollY);
const out = {
  cut, inner, rows: rows.length,
  headerTop: rows[0].cells[0].getBoundingClientRect().top,
  tableTop: table.getBoundingClientRect().top,
};
"""


@pytest.mark.parametrize("width", [1400, 900])
def test_the_comparison_shows_whole_rows_under_a_sticky_header(quick_report, width):
    """A 42-row comparison sat in a 36rem box whose lower edge cut a row in half: a table of
    up to SCROLL_ROWS rows is part of the page, and its header stays in view as it scrolls."""
    page, data, tmp = quick_report
    console, measured = measure(page, tmp, SCROLLED, (width, 900), f"scrolled_{width}")
    assert console == []
    assert measured["rows"] == len(data["comparisons"]) + 1
    assert measured["cut"] == [], "no box around the table hides part of a row"
    assert measured["inner"] == [], "no box of the page scrolls on its own"
    assert measured["tableTop"] < -100, "scrolled into the table"
    assert measured["headerTop"] == 0, "the header sticks to the top of the window"


def test_a_flagged_leakage_cell_stays_a_table_cell(quick_report):
    """td.flag took .flag's display: block and drew a short box at the top of its row."""
    page, _, tmp = quick_report
    script = """
    const out = [...document.querySelectorAll("td.flag")].map(e => getComputedStyle(e).display);
    """
    _, shown = measure(page, tmp, script, (900, 900), "flags")
    assert shown and set(shown) == {"table-cell"}, shown


def test_the_seeds_table_fits_a_900_px_window(tmp_path):
    """Across training seeds hid its verdict and per-run columns behind a sideways scroll bar."""
    preds = make_predictions(scale=0.1, seed=0)
    rng = np.random.default_rng(0)
    noise = [rng.normal(0, 0.03, len(preds)) for _ in range(3)]
    runs = [
        preds.assign(run=f"s{k}", score=np.clip(preds.score + e, 0, 1)) for k, e in enumerate(noise)
    ]
    ev = evaluate(
        pd.concat(runs), segment_by="source,manufacturer", baseline="single_segment", n_boot=30
    )
    page = write_report(ev, tmp_path / "report.html")[0]
    script = """
    const wide = [...document.querySelectorAll("body *")]
      .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible")
      .map(e => e.tagName + "." + e.className);
    const seeds = document.querySelector("#seeds + p + div table");
    const right = seeds ? seeds.getBoundingClientRect().right : null;
    const out = {wide, seeds: right, width: document.documentElement.clientWidth};
    """
    console, measured = measure(page, tmp_path, script, (900, 900))
    assert console == []
    assert measured["seeds"] is not None and measured["seeds"] <= measured["width"]
    assert measured["wide"] == [], "no table hides columns behind a scroll bar"
