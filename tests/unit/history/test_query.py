"""History window stats: rates and the window's latency on a hand-computed series."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.history_helpers import MIN, T0, recorder, snapshot, usage
from usermetrics.history.query import WindowStats, overview_stats, window_stats

pytestmark = pytest.mark.django_db


def test_history_query_rates_and_window_latency_on_a_hand_computed_series():
    rec = recorder()
    # Dashboard start: the first counters are a baseline (they happened before we watched).
    rec.record(snapshot(T0, [usage("a", total=10, errors=1, avg=100.0)]))
    # +10 requests, avg x count 1000 -> 2200: the window's 10 requests averaged 120 ms.
    rec.record(snapshot(T0 + MIN, [usage("a", total=20, errors=3, avg=110.0)]))
    # +10 requests, 2200 -> 3600: 140 ms each.
    rec.record(snapshot(T0 + 2 * MIN, [usage("a", total=30, errors=3, avg=120.0)]))
    stats = window_stats(window=timedelta(minutes=5), now=T0 + 2 * MIN)["a"]
    assert (stats.requests, stats.errors) == (20, 2)
    # The history starts at T0: 20 requests over the 2 minutes it covers, not over all 5.
    assert stats.requests_per_min == 10.0
    assert (stats.seconds, stats.since) == (120.0, T0)
    assert stats.error_rate == 0.1
    assert stats.latency_ms == 130.0  # (1200 + 1400) / 20, not the lifetime mean of 120
    # A one-minute window sees only the last step.
    last = window_stats(window=MIN, now=T0 + 2 * MIN)["a"]
    assert (last.requests, last.latency_ms, last.requests_per_min) == (10, 140.0, 10.0)
    overall = overview_stats(window=timedelta(minutes=5), now=T0 + 2 * MIN)
    assert (overall.requests, overall.errors, overall.latency_ms) == (20, 2, 130.0)
    assert overall.requests_per_min == 10.0


def test_history_query_rates_divide_by_the_span_the_history_covers():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=0)]))
    for minute in range(1, 4):  # 100 requests a minute for three minutes after a start
        rec.record(snapshot(T0 + minute * MIN, [usage("a", total=100 * minute)]))
    now = T0 + 3 * MIN
    hour = window_stats(window=timedelta(hours=1), now=now)["a"]
    assert hour.requests == 300
    assert hour.requests_per_min == 100.0  # not 300 / 60 = 5
    assert hour.as_dict()["seconds"] == 180.0 and hour.as_dict()["since"] == T0.isoformat()
    # A window the history covers whole is divided by the whole window.
    two = window_stats(window=2 * MIN, now=now)["a"]
    assert (two.requests, two.requests_per_min, two.seconds) == (200, 100.0, 120.0)
    assert overview_stats(window=timedelta(hours=1), now=now).requests_per_min == 100.0


def test_history_query_only_the_asked_users_are_read():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a"), usage("b")]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=2), usage("b", total=3)]))
    assert set(window_stats(window=timedelta(minutes=5), now=T0 + MIN, user_ids=["b"])) == {"b"}


def test_history_query_window_stats_without_requests():
    empty = WindowStats(seconds=300)
    assert (empty.requests_per_min, empty.error_rate, empty.latency_ms) == (0.0, None, None)
    assert empty.as_dict()["requests"] == 0
