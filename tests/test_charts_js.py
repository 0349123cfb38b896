"""charts.js in headless Chromium: the five detail charts and a sparkline draw from real history JSON."""

from __future__ import annotations

import functools
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
from usermetrics.history.query import window_stats
from usermetrics.history.series import sparklines, user_series

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static" / "usermetrics"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

PAGE = """<!doctype html><html data-theme="dark"><head><title>loading</title>
<link rel="stylesheet" href="uPlot.min.css"><link rel="stylesheet" href="charts.css">
<script src="uPlot.iife.min.js"></script><script src="charts.js"></script></head>
<body><div id="detail"></div><table id="list"><tr><td data-sparkline-user="a/b"></td></tr></table>
<script src="page.js"></script></body></html>"""

# The page's own script: mount, append two live frames, fill the sparklines, then report in the title.
PAGE_JS = """
var charts = usermetricsCharts.mount(document.getElementById("detail"), {historyUrl: "history.json", window: "15m"});
usermetricsCharts.sparklines(document.getElementById("list"), "sparklines.json", "1h").then(function () {
  setTimeout(function () {
    var t = Date.now() / 1000;
    function frame(total) {
      return {session: {ref_count: 1}, requests: {total_requests: total, error_count: 0, avg_latency_ms: 10},
              memory: {exit_stack_size: 2}};
    }
    charts.appendLive(frame(10), t - 2);
    charts.appendLive(frame(16), t);
    var status = document.querySelector(".usermetrics-chart-status").textContent;
    document.title = "canvases=" + document.querySelectorAll("canvas").length + ";status=" + status;
  }, 300);
});
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture
def page_dir(tmp_path: Path) -> Iterator[Path]:
    """The vendored files, charts.js, the page, and history JSON made by the real query functions."""
    for path in [
        *(STATIC / "vendor" / "uplot").glob("uPlot.*"),
        STATIC / "js" / "charts.js",
        STATIC / "css" / "charts.css",
    ]:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "index.html").write_text(PAGE)
    (tmp_path / "page.js").write_text(PAGE_JS)
    yield tmp_path


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium")
@pytest.mark.django_db
def test_charts_js_draws_detail_charts_and_sparklines(page_dir):
    rec = recorder()
    rec.record(snapshot(T0, [usage("a/b", total=0)]))
    rec.record(snapshot(T0 + timedelta(minutes=1), [usage("a/b", total=12, errors=1, avg=40.0, ref=1, stack=3)]))
    doc = user_series(user_id="a/b", window=timedelta(minutes=15), now=T0 + timedelta(minutes=2))
    doc["stats"] = window_stats(window=timedelta(minutes=15), now=T0 + timedelta(minutes=2))["a/b"].as_dict()
    (page_dir / "history.json").write_text(json.dumps(doc))
    lines = sparklines(user_ids=["a/b"], window=timedelta(hours=1), now=T0 + timedelta(minutes=2))
    (page_dir / "sparklines.json").write_text(json.dumps({"window": "1h", "users": lines}))

    handler = functools.partial(_QuietHandler, directory=str(page_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
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
    # Five detail charts and one sparkline, each a uPlot canvas; the window stats as text.
    assert title.startswith("canvases=6;"), (title, result.stderr[-2000:])
    assert "Last 15m: 12 requests" in title
    assert "latency 40 ms" in title
