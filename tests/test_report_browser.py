"""A real browser opens the report: it renders, logs no console error, requests nothing.

Headless Chromium (Debian's ``chromium``, installed by ``.ci/run``) loads the page with every
connection sent to a local proxy that records it, and with console messages logged to stderr.
A screenshot is kept in ``test-artifacts/``. The detector itself is tested on a page that makes
a request and logs an error, so a silent pass cannot come from a blind check.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

from segeval.evaluation import evaluate
from segeval.report import write_report
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
    page: Path, tmp: Path, screenshot: Path | None = None
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
        "--window-size=1300,3000",
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
