"""The page modules in headless Chromium, served over HTTP (ES modules need it, with a JS MIME type).

charts.js draws the five detail charts and a sparkline from real history JSON.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.history_helpers import T0, recorder, snapshot, usage
from usermetrics import history

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static" / "usermetrics"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

# uPlot stays a classic script (it defines the global `uPlot`); the page's own code is a module.
PAGE = """<!doctype html><html data-theme="dark"><head><title>loading</title>
<link rel="stylesheet" href="uPlot.min.css"><link rel="stylesheet" href="charts.css">
<script src="uPlot.iife.min.js" defer></script><script type="module" src="page.js"></script></head>
<body><div id="detail"></div><table id="list"><tr><td data-sparkline-user="a/b"></td></tr></table></body></html>"""

# Mount, append two live frames, fill the sparklines, then report in the title. If any module of
# the graph fails to load or to parse, none of it runs and the title stays "loading".
PAGE_JS = """
import { available, mount, sparklines } from "./charts.js";
var charts = mount(document.getElementById("detail"), {historyUrl: "history.json", window: "15m"});
sparklines(document.getElementById("list"), "sparklines.json", "1h").then(function () {
  setTimeout(function () {
    var t = Date.now() / 1000;
    function frame(total) {
      return {session: {ref_count: 1}, requests: {total_requests: total, error_count: 0, avg_latency_ms: 10},
              memory: {exit_stack_size: 2}};
    }
    charts.appendLive(frame(10), t - 2);
    charts.appendLive(frame(16), new Date(t * 1000).toISOString());
    var status = document.querySelector(".usermetrics-chart-status").textContent;
    var spark = document.querySelector("[data-sparkline-user]").title;
    document.title = "canvases=" + document.querySelectorAll("canvas").length + ";available=" + available() +
      ";global=" + typeof window.usermetricsCharts + ";spark=" + spark + ";status=" + status;
  }, 300);
});
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture
def page_dir(tmp_path: Path) -> Iterator[Path]:
    """The vendored files, every page module (charts.js imports format.js), and the test pages."""
    for path in [
        *(STATIC / "vendor" / "uplot").glob("uPlot.*"),
        *(STATIC / "js").glob("*.js"),
        STATIC / "css" / "charts.css",
    ]:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "index.html").write_text(PAGE)
    (tmp_path / "page.js").write_text(PAGE_JS)
    yield tmp_path


def _title(page_dir: Path, page: str) -> tuple[str, str]:
    """Serve ``page_dir`` over HTTP, let Chromium run ``page``: its final title and Chromium's stderr."""
    handler = functools.partial(_QuietHandler, directory=str(page_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
    title = result.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    return html.unescape(title), result.stderr[-2000:]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium")
@pytest.mark.django_db
def test_charts_js_draws_detail_charts_and_sparklines(page_dir):
    rec = recorder()
    rec.record(snapshot(T0, [usage("a/b", total=0)]))
    rec.record(snapshot(T0 + timedelta(minutes=1), [usage("a/b", total=12, errors=1, avg=40.0, ref=1, stack=3)]))
    doc = history.user_series(user_id="a/b", window=timedelta(minutes=15), now=T0 + timedelta(minutes=2))
    doc["stats"] = history.window_stats(window=timedelta(minutes=15), now=T0 + timedelta(minutes=2))["a/b"].as_dict()
    (page_dir / "history.json").write_text(json.dumps(doc))
    lines = history.sparklines(user_ids=["a/b"], window=timedelta(hours=1), now=T0 + timedelta(minutes=2))
    (page_dir / "sparklines.json").write_text(json.dumps({"window": "1h", "users": lines}))

    title, stderr = _title(page_dir, "index.html")
    # Five detail charts and one sparkline, each a uPlot canvas; the window stats as text.
    assert title.startswith("canvases=6;"), (title, stderr)
    # A module now: it sees uPlot, and it leaves no global of its own behind.
    assert ";available=true;global=undefined;" in title
    assert ";spark=Requests per minute, last 1h;" in title
    assert "Last 15m: 12 requests" in title
    assert "latency 40 ms" in title
