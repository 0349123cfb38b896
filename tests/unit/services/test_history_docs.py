"""The history API's documents, asked of the service directly: the window chosen and said back, not found, bounds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from usermetrics_nat.histogram import percentiles

from tests.support.history_helpers import FixedSource, histogram, recorder, snapshot, usage
from usermetrics.clock import utcnow
from usermetrics.extras import Extras
from usermetrics.history.query import overview_stats, window_stats
from usermetrics.services.history_docs import (
    MAX_USERS,
    overview_history_doc,
    rows_window_doc,
    sparklines_doc,
    user_history_doc,
)
from usermetrics.views.columns import WINDOW_COLUMNS
from usermetrics.windows import window_length

pytestmark = pytest.mark.django_db(transaction=True)


async def test_history_docs_user_doc_of_a_live_user_says_its_window(recorded_flags):
    doc = await user_history_doc(user_id="alice", window="15m")
    assert doc["user_id"] == "alice" and doc["window"] == "15m" and len(doc["t"]) == 90
    assert doc["stats"]["requests"] == 60 and doc["stats"]["latency_ms"] == 100.0
    assert doc["ended"] is None and [life["ended_at"] for life in doc["lives"]] == [None]
    bob = await user_history_doc(user_id="bob", window="1h")
    assert [flag["name"] for flag in bob["flags"]] == ["erroring"] and bob["stats"]["error_rate"] == 0.5


@pytest.mark.parametrize(("asked", "used"), [("5m", "5m"), ("7d", "7d"), ("2y", "1h"), ("", "1h"), (None, "1h")])
async def test_history_docs_user_doc_takes_every_window_and_falls_back_to_the_default(recorded_flags, asked, used):
    doc = await user_history_doc(user_id="alice", window=asked)
    assert doc["window"] == used and doc["stats"]["seconds"] <= window_length(used).total_seconds()


async def test_history_docs_user_doc_of_an_ended_user_has_its_last_values_and_no_flags(recorded_flags):
    doc = await user_history_doc(user_id="carol", window="1h")
    assert doc["ended"]["label"].startswith("ended ") and doc["ended"]["ended_at"]
    assert doc["ended"]["last"]["requests"]["total_requests"] == 3 and doc["ended"]["last"]["user_id"] == "carol"
    assert doc["flags"] == [] and doc["lives"][-1]["ended_at"] == doc["ended"]["ended_at"]


async def test_history_docs_user_doc_of_a_user_nobody_knows_is_none(recorded_flags):
    assert await user_history_doc(user_id="nobody", window="1h") is None
    assert await user_history_doc(user_id="", window=None) is None


@pytest.mark.parametrize(("asked", "used"), [("15m", "15m"), ("24h", "24h"), ("nope", "1h")])
async def test_history_docs_overview_is_everyones_over_the_chosen_window(recorded_flags, asked, used):
    doc = await overview_history_doc(window=asked)
    assert doc["window"] == used
    stats = await sync_to_async(overview_stats)(window=window_length(used))
    assert doc["stats"]["requests"] == stats.requests == 60 + 10  # alice and bob moved; carol and dave did not


async def test_history_docs_sparklines_are_bounded_and_say_their_window(recorded_flags):
    doc = await sparklines_doc(user_ids=["alice", "x"], window="7d")
    assert doc["window"] == "7d" and sum(doc["users"]["alice"]) > 0 and not any(doc["users"]["x"])
    many = [f"u{i:04d}" for i in range(MAX_USERS + 25)]
    doc = await sparklines_doc(user_ids=["alice", *many], window="bogus")
    assert doc["window"] == "1h" and len(doc["users"]) == MAX_USERS and "alice" in doc["users"]
    assert f"u{MAX_USERS - 2:04d}" in doc["users"] and f"u{MAX_USERS - 1:04d}" not in doc["users"]


@pytest.mark.parametrize(("asked", "used"), [("5m", "5m"), ("24h", "24h"), ("15m", "1h"), ("7d", "1h"), (None, "1h")])
async def test_history_docs_rows_window_takes_only_the_lists_windows(recorded_flags, asked, used):
    doc = await rows_window_doc(user_ids=["bob", "carol"], window=asked)
    assert doc["window"] == used and sorted(doc["users"]) == ["bob", "carol"]
    assert 0 < doc["span"]["seconds"] <= window_length(used).total_seconds()
    assert [f["name"] for f in doc["users"]["bob"]["flags"]] == ["erroring"] and doc["users"]["carol"]["flags"] == []


async def test_history_docs_rows_window_reads_at_most_a_page_of_users(recorded_flags):
    many = ["bob", *(f"u{i:04d}" for i in range(MAX_USERS + 10))]
    doc = await rows_window_doc(user_ids=many, window="1h")
    assert len(doc["users"]) == MAX_USERS and "bob" in doc["users"] and f"u{MAX_USERS:04d}" not in doc["users"]


@pytest.fixture
async def recorded_latency(install_service):
    """alice, reported by NAT companions: 10 fast requests, then 20 slow ones with 2 queued; bob without extras."""
    now = utcnow()
    fast, slow = [10.0] * 10, [1000.0] * 20
    rec = recorder()
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=5), []))
    first = [usage("alice", total=10, avg=10.0), usage("bob", total=1, avg=5.0)]
    extras = {"alice": Extras(latency=histogram(*fast))}
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=3), first, extras=extras))
    after = [usage("alice", total=30, avg=670.0, ref=10), usage("bob", total=2, avg=5.0)]
    extras = {"alice": Extras(latency=histogram(*fast, *slow), queued=2)}
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=1), after, extras=extras))
    await install_service([FixedSource("demo", after)], interval=3600)
    return percentiles(histogram(*fast, *slow)), percentiles(histogram(*slow))


async def test_history_docs_carry_the_windows_percentiles_and_queue(recorded_latency):
    whole, _ = recorded_latency
    doc = await user_history_doc(user_id="alice", window="15m")
    assert (doc["stats"]["p50_ms"], doc["stats"]["p95_ms"], doc["stats"]["p99_ms"]) == whole
    assert doc["stats"]["max_queued"] == 2
    assert len(doc["p95_ms"]) == len(doc["queued"]) == len(doc["t"])
    assert max(q for q in doc["queued"] if q is not None) == 2
    assert any(p is not None for p in doc["p99_ms"])
    bob = await user_history_doc(user_id="bob", window="15m")
    assert bob["stats"]["p95_ms"] is None and not any(q is not None for q in bob["queued"])
    overview = await overview_history_doc(window="15m")
    assert overview["stats"]["p95_ms"] == whole[1] and max(q for q in overview["queued"] if q is not None) == 2


async def test_history_docs_list_rows_have_the_windows_p95(recorded_latency):
    _, slow = recorded_latency
    doc = await rows_window_doc(user_ids=["alice", "bob"], window="5m")
    assert doc["users"]["alice"]["stats"]["p95_ms"] is not None
    assert doc["users"]["bob"]["stats"]["p95_ms"] is None
    assert "w_p95_ms" in [c.field for c in WINDOW_COLUMNS]  # the list's column ("p95" over the window)
    # The window of the last two minutes holds the slow requests only.
    found = await sync_to_async(lambda: window_stats(window=timedelta(minutes=2), user_ids=["alice"]))()
    assert found["alice"].percentiles == slow
