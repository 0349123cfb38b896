"""The pages' history parts: window rates, lifecycle flags, ended users, charts and export links."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from asgiref.sync import sync_to_async

from tests.history_helpers import FixedSource, recorder, snapshot, usage
from usermetrics import history

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def recorded(install_service):
    """alice busy, bob failing half his requests, dave stuck, carol ended a minute ago; all recorded."""
    now = history.utcnow()
    before = [
        usage("alice", last=now - timedelta(minutes=3)),
        usage("bob", last=now - timedelta(minutes=3)),
        usage("carol", total=3, errors=1, avg=20.0, last=now - timedelta(minutes=3)),
        usage("dave", ref=1, total=1, last=now - timedelta(minutes=10)),
    ]
    after = [
        usage("alice", total=60, avg=100.0, last=now),
        usage("bob", total=10, errors=5, avg=50.0, last=now),
        usage("dave", ref=1, total=1, last=now - timedelta(minutes=10)),
    ]
    install_service([FixedSource("demo", after)], interval=3600)
    rec = recorder()
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=3), before))
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=1), after))  # carol ended
    return after


def text(html: str) -> str:
    """The page's text with tags and runs of whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


async def test_detail_shows_window_rates_charts_and_export_links(recorded, staff_client):
    response = await staff_client.get("/users/alice/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-rate="requests_per_min">1</dd>' in html  # 60 requests over 1 h
    assert 'data-rate="error_rate">0 %</dd>' in html
    assert 'data-rate="latency_ms">100 ms</dd>' in html
    assert 'id="um-charts"' in html and "usermetrics/js/charts.js" in html and "uPlot.iife.min.js" in html
    assert '"history_url": "/api/users/alice/history"' in html
    assert 'href="/api/users/alice/history.csv?window=1h"' in html
    assert 'href="/api/users/alice/history.json?window=1h"' in html
    assert "No flag is raised." in html


async def test_detail_window_parameter_drives_rates_and_exports(recorded, staff_client):
    html = (await staff_client.get("/users/alice/", {"window": "24h"})).content.decode()
    assert 'href="/api/users/alice/history.csv?window=24h"' in html
    assert 'data-rate="requests_per_min">0.04</dd>' in html  # 60 requests over 24 h
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
async def test_detail_explains_each_active_flag(recorded, staff_client, user_id, flag, sentence):
    html = (await staff_client.get(f"/users/{user_id}/")).content.decode()
    assert f'<span class="um-flag" data-flag="{flag}">' in html
    assert sentence in text(html)
    assert "Thresholds: idle after 1 min" in text(html)


async def test_detail_of_an_ended_user_shows_its_last_values(recorded, staff_client):
    response = await staff_client.get("/users/carol/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<span class="um-badge" id="um-state" data-state="ended">ended</span>' in html
    assert "ended 1 min ago" in text(html)
    assert '<td class="um-num" data-field="total_requests">3</td>' in html
    assert '"ended": true' in html
    assert "An ended user has no flags." in html


async def test_detail_of_a_never_seen_id_is_404(recorded, staff_client):
    assert (await staff_client.get("/users/nobody/")).status_code == 404
