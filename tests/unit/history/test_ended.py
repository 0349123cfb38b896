"""Ended users: one retention rule for every reader, and the live list's own search and order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.history_helpers import T0, recorder, snapshot, usage
from usermetrics.history.ended import ended_count, ended_page, ended_select, ended_since, ended_user_get
from usermetrics.models import UserLife

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _ended(user_id: str, ago: timedelta, **counters: int) -> None:
    UserLife.objects.create(
        user_id=user_id,
        created_at=T0 - ago - DAY,
        first_seen=T0 - ago - DAY,
        ended_at=T0 - ago,
        last_activity=T0 - ago,
        sources="nat-a",
        **counters,
    )


def test_history_ended_retention_is_the_rollup_retention_for_every_reader():
    _ended("ten-days", 10 * DAY)  # past the raw retention (7 days), within the roll-up one (90)
    _ended("long-gone", 91 * DAY)
    assert ended_since(T0) == T0 - 90 * DAY
    assert ended_count(now=T0) == 1  # what /metrics reports
    assert [e.user_id for e in ended_page(ended_select(now=T0))] == ["ten-days"]  # the Ended tab and export
    assert ended_user_get(user_id="ten-days", now=T0) is not None  # its detail page
    assert ended_user_get(user_id="long-gone", now=T0) is None


def test_history_ended_search_matches_like_the_live_list():
    _ended("Ädä@example.com", DAY)
    _ended("bob@example.com", DAY)
    _ended("3f2a-uuid", DAY)
    found = ended_select(q="  äDÄ ", now=T0)  # case-folded, trimmed, non-ASCII too
    assert [e.user_id for e in ended_page(found)] == ["Ädä@example.com"]
    named = ended_select(q="carol", labels={"3f2a-uuid": "Carol Shaw"}, now=T0)
    assert [e.user_id for e in ended_page(named)] == ["3f2a-uuid"]


def test_history_ended_order_follows_the_sort_keys_with_user_id_ties():
    _ended("b", DAY, total_requests=5)
    _ended("a", DAY, total_requests=5)
    _ended("c", 2 * DAY, total_requests=9)
    by_requests = [e.user_id for e in ended_page(ended_select(sort="-total_requests", now=T0))]
    assert by_requests == ["c", "a", "b"]
    by_activity = [e.user_id for e in ended_page(ended_select(sort="-last_activity", now=T0))]
    assert by_activity == ["a", "b", "c"]


def test_history_ended_excludes_users_with_an_open_life():
    _ended("back", 2 * DAY)
    recorder().record(snapshot(T0 - DAY, [usage("back", total=1)]))  # the user is live again: a second life
    assert list(UserLife.objects.filter(user_id="back").values_list("life", flat=True)) == [1, 2]
    assert ended_select(now=T0) == []
