"""The page modules in headless Chromium, served over HTTP (ES modules need it, with a JS MIME type).

charts.js draws the five detail charts and a sparkline from real history JSON; format.js, which
words every number and time of the pages and the charts, says them as usermetrics/humanize.py does.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from tests.support.browser import CHROMIUM, needs_chromium
from tests.support.history_helpers import T0, recorder, snapshot, usage
from tests.support.machine import ROOT
from usermetrics import humanize
from usermetrics.history.query import window_stats
from usermetrics.history.series import sparklines, user_series
from usermetrics.snapshot import is_active
from usermetrics.templatetags.usermetrics import iso, utc

STATIC = ROOT / "static" / "usermetrics"

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

# format.js on the cases in cases.json; the answers go to the title as JSON.
FORMAT_PAGE = """<!doctype html><html><head><title>loading</title>
<script type="module" src="format_page.js"></script></head><body></body></html>"""
FORMAT_JS = """
import * as f from "./format.js";
fetch("cases.json").then(function (r) { return r.json(); }).then(function (c) {
  var now = f.parseTime(c.now);
  document.title = JSON.stringify({
    duration: c.duration.map(function (s) { return f.durationWords(s); }),
    ago: c.ago.map(function (when) { return f.ago(f.parseTime(when), now); }),
    number: c.number.map(function (v) { return f.number(v); }),
    rates: c.rates.map(function (s) { return f.rateWords(s); }),
    active: c.active.map(function (u) { return f.isActive(u); }),
    utc: c.utc.map(function (when) { return f.utcExact(f.parseTime(when)); }),
    display: c.display.map(function (x) { return f.userDisplay(x[0], x[1]); }),
    url: c.url.map(function (id) { return f.detailUrl(c.prefix, id); }),
    big: c.big.map(function (v) { return f.bigNumber(v); }),
    latency: c.latency.map(function (v) { return f.latencyFit(v); }),
    local: c.utc.map(function (when) { return f.localExact(f.parseTime(when)); }),
    coverage: c.coverage.map(function (x) { return f.coverageWords(x[0], x[1]); }),
    bytes: c.bytes.map(function (v) { return f.bytesWords(v); }),
    share: c.share.map(function (v) { return f.shareWords(v); }),
  });
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
    (tmp_path / "format.html").write_text(FORMAT_PAGE)
    (tmp_path / "format_page.js").write_text(FORMAT_JS)
    yield tmp_path


def _title(page_dir: Path, page: str, tz: str = "UTC") -> tuple[str, str]:
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
            env={**os.environ, "TZ": tz},
        )
    finally:
        server.shutdown()
        server.server_close()
    title = result.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    return html.unescape(title), result.stderr[-2000:]


@needs_chromium
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

    title, stderr = _title(page_dir, "index.html")
    # Five detail charts and one sparkline, each a uPlot canvas; the window stats as text.
    assert title.startswith("canvases=6;"), (title, stderr)
    # A module now: it sees uPlot, and it leaves no global of its own behind.
    assert ";available=true;global=undefined;" in title
    assert ";spark=Requests per minute, last 1h;" in title
    # The history starts at T0, two minutes before: the numbers cover those, and say so.
    assert "status=Over the last 2 min; history starts 12:00 UTC+00:00: 12 requests, 6/min" in title
    assert "error rate 8.33 %, latency 40 ms" in title


@needs_chromium
def test_format_js_words_as_humanize_does(page_dir):
    now = T0
    seconds = [0, 0.5, 59, 60, 61, 3599, 3600, 3660, 7200, 86399, 86400, 90000, 172800, 200000, -5]
    agos = [0, 0.5, 1, 59, 125, 3660, 90000, -10]
    # No halves such as 0.125 or 2.675: there the script rounds up where Python rounds to even.
    numbers = [0, 3, 12.5, 0.07, 1 / 3, 100, 12.345678, 99.999, 1234.5678]
    rates = [(12.5, 0.0325, 140.0), (0.0, None, None), (3.333, 0.1, 40.25)]
    # Records whose is_active says one thing and ref_count another: both sides read the counter.
    records = [
        usage("idle", ref=0),
        usage("busy", ref=2),
        usage("liar", ref=0).model_copy(
            update={"session": usage("liar", ref=0).session.model_copy(update={"is_active": True})}
        ),
    ]
    times = [now, now + timedelta(microseconds=123456), now + timedelta(microseconds=999999)]
    displays = [("a@example.com", "Ada"), ("a@example.com", None), ("<b>", "")]
    ids = ["a@example.com", "x/y~z", ".hidden", "a b+c&d=e", "<img src=x onerror=alert(1)>", "ü", "", " ", "nul\x00"]
    prefix = reverse("usermetrics:user-detail", args=["ID"])[: -len("ID/")]
    bigs = [0, 3, 999, 12345, 12345.678, 999999, 1234567, 2e6, 999999999, 1.5e12, -1500000, 9007199254740993, 3.33e300]
    latencies = [0.0, 206.99, 999.4, 1612.3, 59000, 125000, 7.2e6, 3.33e300]
    sizes = [0, 812, 1024, 1843, 3_880_000, 5 * 2**30]
    shares = [0.0, 0.0131, 0.5, 0.98765, 1.0]
    coverages = [
        ("1h", 3600.0, now - timedelta(hours=1), 3600.0),
        ("1h", 180.0, now, 3600.0),
        ("5m", 300.0, None, 300.0),
    ]

    cases = {
        "now": iso(now),
        "duration": seconds,
        "ago": [iso(now - timedelta(seconds=s)) for s in agos],
        "number": numbers,
        "rates": [{"requests_per_min": r, "error_rate": e, "latency_ms": m} for r, e, m in rates],
        "active": [u.model_dump(mode="json") for u in records],
        "utc": [iso(t) for t in times],
        "display": displays,
        "prefix": prefix,
        "url": ids,
        "big": bigs,
        "latency": latencies,
        "bytes": sizes,
        "share": shares,
        "coverage": [[w, {"seconds": sec, "since": iso(since) if since else None}] for w, sec, since, _ in coverages],
    }
    (page_dir / "cases.json").write_text(json.dumps(cases))

    title, stderr = _title(page_dir, "format.html", tz="Europe/Berlin")
    assert title.startswith("{"), (title, stderr)
    got = json.loads(title)
    assert got["duration"] == [humanize.duration_words(s) for s in seconds]
    assert got["ago"] == [humanize.ago(now - timedelta(seconds=s), now) for s in agos]
    assert got["number"] == [humanize.number(v) for v in numbers]
    assert got["rates"] == [humanize.rates_words(*r) for r in rates]
    assert got["active"] == [is_active(u) for u in records] == [False, True, False]
    assert got["utc"] == [utc(t) for t in times]
    assert got["display"] == [humanize.user_display(i, {i: label} if label else {}) for i, label in displays]
    assert got["big"] == [humanize.big_number(v) for v in bigs]
    assert got["big"][5:8] == ["999,999", "1.2M", "2M"] and got["big"][-1] == "3.3e+300"
    assert got["latency"] == [humanize.latency_fit(v) for v in latencies]
    assert (
        got["bytes"]
        == [humanize.bytes_words(v) for v in sizes]
        == ["0 B", "812 B", "1 KiB", "1.8 KiB", "3.7 MiB", "5 GiB"]
    )
    assert got["share"] == [humanize.share_words(v) for v in shares]
    # One rule for times in the browser: its own zone, with the offset shown (T0 is in winter: +01:00).
    berlin = ZoneInfo("Europe/Berlin")
    assert got["local"] == [t.astimezone(berlin).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC+01:00" for t in times]
    # The words say what the rates cover as the server does, with the clock in the browser's zone.
    assert got["coverage"][0] == humanize.coverage_words(*coverages[0]) == "the last 1h"
    assert got["coverage"][2] == "the last 5m"
    assert (
        got["coverage"][1]
        == "the last 3 min; history starts " + now.astimezone(berlin).strftime("%H:%M") + " UTC+01:00"
    )
    assert humanize.coverage_words(*coverages[1]) == f"the last 3 min; history starts {now:%H:%M} UTC"
    # Percent-encoded differently from reverse() (encodeURIComponent escapes "@", "+", "&", "="),
    # but the same path once decoded, so the link opens the same user.
    assert [unquote(u) for u in got["url"]] == [unquote(reverse("usermetrics:user-detail", args=[i])) for i in ids]


# format.js's words of the NAT companions' figures, on the cases in figures.json.
FIGURES_PAGE = FORMAT_PAGE.replace("format_page.js", "figures_page.js")
FIGURES_JS = """
import * as f from "./format.js";
fetch("figures.json").then(function (r) { return r.json(); }).then(function (c) {
  document.title = JSON.stringify({
    percentile: c.percentile.map(function (v) { return f.percentileWords(v); }),
    count: c.count.map(function (v) { return f.figureCount(v); }),
    title: c.title.map(function (x) { return f.percentilesTitle(x); }),
    bucket: c.bucket.map(function (b) { return f.bucketWords(b); }),
    concurrency: c.concurrency.map(function (v) { return f.concurrencyWords(v); }),
    workers: c.workers.map(function (v) { return f.workersWords(v); }),
    state: c.state.map(function (v) { return f.workerStateWords(v); }),
    skipped: c.skipped.map(function (v) { return f.skippedWords(v); }),
  });
});
"""


@needs_chromium
def test_format_js_words_the_companions_figures_as_humanize_does(page_dir):
    cases = {
        "percentile": [None, 0.0, 147.5, 1612.3, 301000.0],
        "count": [None, 0, 3],
        "title": [{"p50_ms": 12.0, "p95_ms": 140.0, "p99_ms": 1200.0}, {"p50_ms": None, "p95_ms": None}],
        "bucket": [{"gt_ms": 0, "le_ms": 1}, {"gt_ms": 100, "le_ms": 150}, {"gt_ms": 300000, "le_ms": None}],
        "concurrency": [0, 8],
        "workers": [1, 3],
        "state": ["ok", "ended"],
        "skipped": [{}, {"too large": 1, "garbage": 2}],
    }
    (page_dir / "figures.json").write_text(json.dumps(cases))
    (page_dir / "figures.html").write_text(FIGURES_PAGE)
    (page_dir / "figures_page.js").write_text(FIGURES_JS)
    title, stderr = _title(page_dir, "figures.html")
    assert title.startswith("{"), (title, stderr)
    got = json.loads(title)
    assert got["percentile"] == [humanize.percentile_words(v) for v in cases["percentile"]]
    assert got["count"] == [humanize.figure_count(v) for v in cases["count"]] == ["\u2013", "0", "3"]
    assert got["title"] == [humanize.percentiles_title(x) for x in cases["title"]]
    assert got["bucket"] == [humanize.bucket_words(b["gt_ms"], b["le_ms"]) for b in cases["bucket"]]
    assert got["bucket"] == ["\u2264 1 ms", "\u2264 150 ms", "> 5 min"]
    assert got["concurrency"] == [humanize.concurrency_words(v) for v in cases["concurrency"]]
    assert got["workers"] == [humanize.workers_words(v) for v in cases["workers"]]
    assert got["state"] == [humanize.worker_state_words(v) for v in cases["state"]] == ["live", "ended"]
    assert got["skipped"] == [humanize.skipped_words(v) for v in cases["skipped"]]
