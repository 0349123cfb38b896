"""The pages' history parts: window rates, lifecycle flags, ended users, charts and export links."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from tests.support.html import row_ids

pytestmark = pytest.mark.django_db(transaction=True)


def text(html: str) -> str:
    """The page's text with tags and runs of whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _rate(html: str) -> float:
    return float(re.search(r'data-rate="requests_per_min">([0-9.]+)<', html).group(1))


async def test_detail_shows_window_rates_charts_and_export_links(recorded_flags, staff_client):
    response = await staff_client.get("/users/alice/")
    html = response.content.decode()
    assert response.status_code == 200
    # 60 requests over the 3 minutes the history covers (it started 3 min ago), not over 1 h.
    assert 19 < _rate(html) <= 20  # (the request comes a moment after the last sample)
    assert "Over the last 3 min; history starts " in text(html)
    assert 'data-rate="error_rate">0 %</dd>' in html
    assert 'data-rate="latency_ms">100 ms</dd>' in html
    assert 'id="um-charts"' in html and "usermetrics/js/charts.js" in html and "uPlot.iife.min.js" in html
    assert '"history_url": "/api/users/alice/history"' in html
    assert 'href="/api/users/alice/history.csv?window=1h"' in html
    assert 'href="/api/users/alice/history.json?window=1h"' in html
    assert "No flag is raised." in html


async def test_detail_window_parameter_drives_rates_and_exports(recorded_flags, staff_client):
    html = (await staff_client.get("/users/alice/", {"window": "24h"})).content.decode()
    assert 'href="/api/users/alice/history.csv?window=24h"' in html
    assert 19 < _rate(html) <= 20  # still the 3 minutes the history covers
    assert '"window": "24h"' in html
    # An unknown window falls back to the default.
    html = (await staff_client.get("/users/alice/", {"window": "3y"})).content.decode()
    assert 'href="/api/users/alice/history.csv?window=1h"' in html


@pytest.mark.parametrize(
    "user_id, flag, sentence",
    [
        ("bob", "erroring", "5 of 10 requests failed over the last 1h"),
        ("dave", "stuck", "1 request(s) in flight but no activity for 10 min"),
    ],
)
async def test_detail_explains_each_active_flag(recorded_flags, staff_client, user_id, flag, sentence):
    html = (await staff_client.get(f"/users/{user_id}/")).content.decode()
    assert f'<span class="um-flag" data-flag="{flag}">' in html
    assert sentence in text(html)
    assert "Thresholds: idle after 1 min" in text(html)


async def test_detail_of_an_ended_user_shows_its_last_values(recorded_flags, staff_client):
    response = await staff_client.get("/users/carol/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<span class="um-badge" id="um-state" data-state="ended">ended</span>' in html
    assert "ended 1 min ago" in text(html)
    assert '<td class="um-num" data-field="total_requests">3</td>' in html
    assert '"ended": true' in html
    assert "An ended user has no flags." in html


async def test_detail_of_a_never_seen_id_is_404(recorded_flags, staff_client):
    assert (await staff_client.get("/users/nobody/")).status_code == 404


def cell(html: str, user_id: str, field: str) -> str:
    """The text of one cell of one row."""
    row = re.search(rf'<tr data-user-id="{re.escape(user_id)}".*?</tr>', html, re.S)
    assert row is not None, user_id
    found = re.search(rf'data-field="{field}"[^>]*>(.*?)</t[dh]>', row.group(0), re.S)
    assert found is not None, field
    return text(found.group(1)).strip()


async def test_list_rows_show_window_rates_flags_and_sparklines(recorded_flags, staff_client):
    html = (await staff_client.get("/")).content.decode()
    assert 19 < float(cell(html, "alice", "w_requests_per_min")) <= 20  # 60 requests over the 3 min covered
    assert cell(html, "alice", "w_latency_ms") == "100 ms"
    assert cell(html, "bob", "w_error_rate") == "50 %"
    assert cell(html, "dave", "w_error_rate") == "\u2013"  # no request in the window
    assert 'data-flag="erroring"' in cell_html(html, "bob") and 'data-flag="stuck"' in cell_html(html, "dave")
    assert '<script id="um-sparklines" type="application/json">' in html
    assert '"alice": [' in html and 'data-sparkline-user="alice"' in html
    assert "Last 3 min" in text(html)  # the group says what the rates cover: the history is 3 min old
    assert "Rates per minute over the last 3 min; history starts " in text(html)


def cell_html(html: str, user_id: str) -> str:
    """The raw HTML of one row."""
    row = re.search(rf'<tr data-user-id="{re.escape(user_id)}".*?</tr>', html, re.S)
    assert row is not None, user_id
    return row.group(0)


async def test_list_window_parameter_changes_the_rates(recorded_flags, staff_client):
    html = (await staff_client.get("/", {"window": "24h"})).content.decode()
    assert 19 < float(cell(html, "alice", "w_requests_per_min")) <= 20  # the history is 3 min old
    assert "Last 3 min" in text(html)
    assert '<a href="?window=5m" class="button" data-window="5m">5m</a>' in html


@pytest.mark.parametrize(
    "state, expected",
    [("stuck", ["dave"]), ("erroring", ["bob"]), ("rising", []), ("ended", ["carol"])],
)
async def test_list_filters_by_flag_and_ended(recorded_flags, staff_client, state, expected):
    html = (await staff_client.get("/", {"state": state})).content.decode()
    assert row_ids(html) == expected


async def test_list_ended_rows_show_when_and_last_values(recorded_flags, staff_client):
    html = (await staff_client.get("/", {"state": "ended"})).content.decode()
    assert "ended 1 min ago" in cell(html, "carol", "user_id")
    assert cell(html, "carol", "total_requests") == "3"
    assert cell(html, "carol", "is_active") == "ended"
    # Searched like the live list: by id.
    assert row_ids((await staff_client.get("/", {"state": "ended", "q": "CAR"})).content.decode()) == ["carol"]
    assert row_ids((await staff_client.get("/", {"state": "ended", "q": "zed"})).content.decode()) == []


async def test_list_export_links_carry_the_view_without_paging(recorded_flags, staff_client):
    params = {"q": "o", "state": "erroring", "sort": "user_id", "window": "5m", "page_size": "25", "page": "1"}
    html = (await staff_client.get("/", params)).content.decode()
    [csv_href] = re.findall(r'<a href="([^"]*)" id="um-export-csv"', html)
    [json_href] = re.findall(r'<a href="([^"]*)" id="um-export-json"', html)
    assert unescape(csv_href) == "/api/export/users.csv?sort=user_id&q=o&state=erroring&window=5m"
    assert unescape(json_href) == "/api/export/users.json?sort=user_id&q=o&state=erroring&window=5m"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sort": "-total_requests"},
        {"state": "errors", "sort": "user_id"},
        {"q": "O", "state": "idle"},
        {"state": "stuck"},
        {"state": "erroring"},
        {"state": "ended"},
    ],
)
async def test_list_export_has_the_pages_users_in_its_order(recorded_flags, staff_client, params):
    # The one test of "export = page": live states, flag states and ended users alike.
    page = (await staff_client.get("/", {**params, "page_size": 500})).content.decode()
    response = await staff_client.get("/api/export/users.json", params)
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert [r["user_id"] for r in json.loads(body)] == row_ids(page)


async def test_list_ended_count_says_ended_users(recorded_flags, staff_client):
    html = (await staff_client.get("/", {"state": "ended"})).content.decode()
    assert "Ended users 1\u20131 of 1, from the history" in text(html)
