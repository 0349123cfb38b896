"""The history API's documents, asked of the service directly: the window chosen and said back, not found, bounds."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from usermetrics.history.query import overview_stats
from usermetrics.services.history_docs import (
    MAX_USERS,
    overview_history_doc,
    rows_window_doc,
    sparklines_doc,
    user_history_doc,
)
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
