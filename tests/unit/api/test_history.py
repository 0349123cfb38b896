"""History API: series and stats for one user and everyone, ended users, windows, access."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from tests.support.history_helpers import FixedSource, recorder, snapshot, usage
from tests.support.producers import current_producer
from usermetrics.clock import utcnow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def recorded_series(install_service):
    """A service over a fixed source, and two minutes of recorded history ending now."""
    now = utcnow()
    created = now - timedelta(hours=1)
    source = FixedSource(
        "fixed", [usage("a/b", total=30, errors=3, avg=120.0, created=created, last=now)], timeout=timedelta(minutes=30)
    )
    await install_service([source])
    rec = recorder()
    await sync_to_async(rec.record)(
        snapshot(now - timedelta(minutes=2), [usage("a/b", total=10, errors=1, avg=100.0, created=created)])
    )
    await sync_to_async(rec.record)(
        snapshot(now - timedelta(minutes=1), [usage("a/b", total=20, errors=3, avg=110.0, created=created)])
    )
    await sync_to_async(rec.record)(
        snapshot(
            now - timedelta(seconds=30),
            [
                usage("a/b", total=20, errors=3, avg=110.0, created=created),
                usage("gone", total=4, avg=10.0, created=created),  # born while watched: counted from zero
            ],
        )
    )
    return source


async def test_history_api_user_series_and_window_stats(recorded_series, staff_client):
    url = reverse("usermetrics:api-user-history", args=["a/b"])
    assert "a~2Fb/history" in url
    response = await staff_client.get(url, {"window": "15m"})
    assert response.status_code == 200
    doc = json.loads(response.content)
    assert doc["user_id"] == "a/b" and doc["window"] == "15m"
    assert len(doc["t"]) == len(doc["requests_per_min"]) == len(doc["exit_stack"]) == 90
    assert doc["stats"]["requests"] == 10 and doc["stats"]["latency_ms"] == 120.0
    assert doc["ended"] is None and isinstance(doc["flags"], list)
    assert response["Cache-Control"].startswith("max-age=0")


async def test_history_api_ended_user_keeps_last_values(recorded_series, staff_client):
    # No source reports "gone" and the recorder has not ended its life yet: not found, by the one rule.
    response = await staff_client.get(reverse("usermetrics:api-user-history", args=["gone"]))
    assert response.status_code == 404
    rec = recorder()
    await sync_to_async(rec.record)(snapshot(utcnow(), []))
    doc = json.loads((await staff_client.get(reverse("usermetrics:api-user-history", args=["gone"]))).content)
    # A new recorder is a restart: the user ended when the last recorded refresh saw it, 30 s ago.
    assert re.fullmatch(r"ended 3\d s ago", doc["ended"]["label"])
    assert doc["ended"]["last"]["requests"]["total_requests"] == 4
    # The user API follows the same rule: an ended user's last values, marked as such.
    response = await staff_client.get(reverse("usermetrics:api-user", args=["gone"]))
    assert response.status_code == 200 and response["Usermetrics-User-State"] == "ended"
    assert "Usermetrics-Ended-At" in response and json.loads(response.content)["requests"]["total_requests"] == 4
    live = await staff_client.get(reverse("usermetrics:api-user", args=["a/b"]))
    assert live["Usermetrics-User-State"] == "live" and "Usermetrics-Ended-At" not in live


async def test_history_api_flags_say_when_an_idle_user_is_evicted(recorded_series, staff_client):
    now = utcnow()
    recorded_series.users = [usage("a/b", total=30, errors=3, avg=120.0, last=now - timedelta(minutes=10, seconds=5))]
    await current_producer().refresh()
    doc = json.loads((await staff_client.get(reverse("usermetrics:api-user-history", args=["a/b"]))).content)
    flags = {f["name"]: f for f in doc["flags"]}
    assert set(flags) == {"idle", "erroring"}  # 2 of its 10 requests in the last hour failed
    flag = flags["idle"]
    assert flag["label"] == "idle 10 min, evicted in about 19 min"  # the lifecycle words' own wording
    assert "evict idle workflows with their counters: evicted in about 19 min" in flag["detail"]


async def test_history_api_overview(recorded_series, staff_client):
    response = await staff_client.get(reverse("usermetrics:api-overview-history"), {"window": "1h"})
    doc = json.loads(response.content)
    assert response.status_code == 200 and doc["window"] == "1h"
    assert doc["stats"]["requests"] == 14  # 10 of "a/b", 4 of "gone"
    assert max(v or 0 for v in doc["users"]) == 2


async def test_history_api_sparklines(recorded_series, staff_client):
    response = await staff_client.get(reverse("usermetrics:api-sparklines"), {"user_id": ["a/b", "x"], "window": "1h"})
    doc = json.loads(response.content)
    assert response.status_code == 200 and doc["window"] == "1h"
    assert sum(doc["users"]["a/b"]) > 0 and sum(doc["users"]["x"]) == 0


async def test_history_api_bad_window_falls_back_and_unknown_user_is_404(recorded_series, staff_client):
    # One rule for a bad window, as on the pages and in the feed: the default, said back in the document.
    response = await staff_client.get(reverse("usermetrics:api-user-history", args=["a/b"]), {"window": "2y"})
    assert response.status_code == 200 and json.loads(response.content)["window"] == "1h"
    response = await staff_client.get(reverse("usermetrics:api-user-history", args=["nobody"]))
    assert response.status_code == 404 and json.loads(response.content)["user_id"] == "nobody"


@pytest.mark.parametrize(
    "name, args",
    [
        ("api-user-history", ["a/b"]),
        ("api-overview-history", []),
        ("api-sparklines", []),
        ("api-user-history-csv", ["a/b"]),
        ("api-user-history-json", ["a/b"]),
        ("api-export-users-csv", []),
        ("api-export-users-json", []),
    ],
)
async def test_history_api_needs_staff_or_token(recorded_series, api_tokens, name, args):
    url = reverse(f"usermetrics:{name}", args=args)
    response = await AsyncClient().get(url)
    assert response.status_code == 401 and b"a/b" not in response.content
    assert (await AsyncClient().get(url, headers={"Authorization": "Bearer nope"})).status_code == 401
    ok = await AsyncClient().get(url, headers={"Authorization": f"Bearer {api_tokens[0]}"})
    assert ok.status_code == 200


async def test_history_api_disabled(recorded_series, staff_client, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "HISTORY": {"ENABLED": False}}
    response = await staff_client.get(reverse("usermetrics:api-overview-history"))
    assert response.status_code == 404 and "disabled" in json.loads(response.content)["detail"]
    ended = await staff_client.get(reverse("usermetrics:api-export-users-json"), {"state": "ended"})
    assert ended.status_code == 404 and "disabled" in json.loads(ended.content)["detail"]


@pytest.mark.parametrize(
    ("name", "args", "asked", "used"),
    [
        ("api-user-history", ["a/b"], "5m", "5m"),
        ("api-user-history", ["a/b"], "7d", "7d"),
        ("api-overview-history", [], "15m", "15m"),
        ("api-sparklines", [], "15m", "15m"),
        ("api-sparklines", [], "7d", "7d"),
        ("api-users-window", [], "15m", "1h"),  # the list's rates take the list's windows only
        ("api-users-window", [], "24h", "24h"),
    ],
)
async def test_history_api_windows_each_endpoint_takes(recorded_series, staff_client, name, args, asked, used):
    doc = json.loads((await staff_client.get(reverse(f"usermetrics:{name}", args=args), {"window": asked})).content)
    assert doc["window"] == used


async def test_history_api_list_window_gives_rates_flags_and_sparklines_of_the_asked_rows(recorded_flags, staff_client):
    response = await staff_client.get("/api/list/window", {"window": "1h", "user_id": ["bob", "carol"]})
    doc = response.json()
    assert doc["window"] == "1h" and sorted(doc["users"]) == ["bob", "carol"]
    assert doc["users"]["bob"]["stats"]["error_rate"] == 0.5
    assert [f["name"] for f in doc["users"]["bob"]["flags"]] == ["erroring"]
    assert doc["users"]["carol"]["flags"] == []  # ended: no flags
    assert len(doc["users"]["bob"]["sparkline"]) == 30
    too_many = [f"u{i}" for i in range(501)]
    assert (await staff_client.get("/api/list/window", {"user_id": too_many})).status_code == 400
