"""History window stats: rates and the window's latency on a hand-computed series."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.history_helpers import MIN, T0, recorder, snapshot, usage
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
    assert stats.requests_per_min == 4.0  # 20 requests over 5 minutes
    assert stats.error_rate == 0.1
    assert stats.latency_ms == 130.0  # (1200 + 1400) / 20, not the lifetime mean of 120
    # A one-minute window sees only the last step.
    last = window_stats(window=MIN, now=T0 + 2 * MIN)["a"]
    assert (last.requests, last.latency_ms, last.requests_per_min) == (10, 140.0, 10.0)
    overall = overview_stats(window=timedelta(minutes=5), now=T0 + 2 * MIN)
    assert (overall.requests, overall.errors, overall.latency_ms) == (20, 2, 130.0)


def test_history_query_only_the_asked_users_are_read():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a"), usage("b")]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=2), usage("b", total=3)]))
    assert set(window_stats(window=timedelta(minutes=5), now=T0 + MIN, user_ids=["b"])) == {"b"}


def test_history_query_window_stats_without_requests():
    empty = WindowStats(seconds=300)
    assert (empty.requests_per_min, empty.error_rate, empty.latency_ms) == (0.0, None, None)
    assert empty.as_dict()["requests"] == 0
