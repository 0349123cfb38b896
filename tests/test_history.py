"""History store: recording, lives, ended users, windowed rates, series, flags and retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError

from tests.history_helpers import CREATED, T0, recorder, snapshot, usage
from usermetrics import history
from usermetrics.models import TotalsHourly, TotalsSample, UserHourly, UserLife, UserSample

pytestmark = pytest.mark.django_db

MIN = timedelta(minutes=1)


def test_history_records_only_changed_users():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=1, avg=10), usage("b", total=2, avg=10)]))
    result = rec.record(snapshot(T0 + MIN, [usage("a", total=1, avg=10), usage("b", total=3, avg=10)]))
    assert result.samples == 1
    assert UserSample.objects.filter(life__user_id="a").count() == 1
    assert UserSample.objects.filter(life__user_id="b").count() == 2
    assert TotalsSample.objects.count() == 2


def test_history_sample_interval_bounds_writes_but_loses_no_traffic():
    rec = recorder(SAMPLE_INTERVAL=60.0)
    rec.record(snapshot(T0, [usage("a", total=1, avg=10)]))
    for i, total in enumerate((2, 3, 4), start=1):
        rec.record(snapshot(T0 + i * timedelta(seconds=10), [usage("a", total=total, avg=10)]))
    assert UserSample.objects.count() == 1  # changes within the interval wait
    rec.record(snapshot(T0 + MIN, [usage("a", total=5, avg=10)]))
    assert UserSample.objects.count() == 2
    stats = history.window_stats(window=timedelta(minutes=5), now=T0 + MIN)
    assert stats["a"].requests == 4  # 1 -> 5: nothing lost in the skipped refreshes


def test_history_rates_and_window_latency_on_a_hand_computed_series():
    rec = recorder()
    # Dashboard start: the first counters are a baseline (they happened before we watched).
    rec.record(snapshot(T0, [usage("a", total=10, errors=1, avg=100.0)]))
    # +10 requests, avg x count 1000 -> 2200: the window's 10 requests averaged 120 ms.
    rec.record(snapshot(T0 + MIN, [usage("a", total=20, errors=3, avg=110.0)]))
    # +10 requests, 2200 -> 3600: 140 ms each.
    rec.record(snapshot(T0 + 2 * MIN, [usage("a", total=30, errors=3, avg=120.0)]))
    stats = history.window_stats(window=timedelta(minutes=5), now=T0 + 2 * MIN)["a"]
    assert (stats.requests, stats.errors) == (20, 2)
    assert stats.requests_per_min == 4.0  # 20 requests over 5 minutes
    assert stats.error_rate == 0.1
    assert stats.latency_ms == 130.0  # (1200 + 1400) / 20, not the lifetime mean of 120
    # A one-minute window sees only the last step.
    last = history.window_stats(window=MIN, now=T0 + 2 * MIN)["a"]
    assert (last.requests, last.latency_ms, last.requests_per_min) == (10, 140.0, 10.0)
    overall = history.overview_stats(window=timedelta(minutes=5), now=T0 + 2 * MIN)
    assert (overall.requests, overall.errors, overall.latency_ms) == (20, 2, 130.0)


def test_history_counter_reset_is_a_new_life_not_negative_traffic():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=10, avg=100.0)]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=20, avg=100.0)]))
    # Same created_at, but the counter went backwards: the server restarted the workflow.
    result = rec.record(snapshot(T0 + 2 * MIN, [usage("a", total=5, errors=1, avg=50.0)]))
    assert (result.new_lives, result.ended) == (1, 1)
    lives = list(UserLife.objects.filter(user_id="a").order_by("life"))
    assert [life.life for life in lives] == [1, 2]
    assert lives[0].ended_at == T0 + 2 * MIN and lives[0].total_requests == 20
    assert lives[1].ended_at is None
    stats = history.window_stats(window=timedelta(minutes=5), now=T0 + 2 * MIN)["a"]
    # 10 in the first life, then the new life's 5 counted from zero; never 5 - 20.
    assert (stats.requests, stats.errors) == (15, 1)
    assert stats.latency_ms == round((1000 + 250) / 15, 2)
    assert all(s.d_requests >= 0 for s in UserSample.objects.all())


def test_history_new_created_at_is_a_new_life():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=3)]))
    result = rec.record(snapshot(T0 + MIN, [usage("a", total=7, created=CREATED + MIN)]))
    assert result.new_lives == 1
    assert UserLife.objects.filter(user_id="a").count() == 2


def test_history_evicted_user_stays_as_ended_with_last_values():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=4, errors=1, avg=12.5, stack=3), usage("b", total=1)]))
    last = T0 + MIN
    rec.record(snapshot(last, [usage("a", total=6, errors=1, avg=15.0, stack=3, last=last), usage("b", total=1)]))
    result = rec.record(snapshot(T0 + 2 * MIN, [usage("b", total=1)]))  # the source evicted "a"
    assert result.ended == 1
    [ended] = history.ended_users(since=T0)
    assert ended.user_id == "a" and ended.ended_at == T0 + 2 * MIN
    assert ended.usage.requests.total_requests == 6
    assert ended.usage.requests.avg_latency_ms == 15.0
    assert ended.usage.memory.exit_stack_size == 3
    assert ended.usage.session.last_activity == last
    assert ended.sources == ("demo",)
    assert ended.ended_ago(T0 + 12 * MIN) == "ended 10 min ago"
    # It comes back later with a fresh workflow: a new life, and no longer listed as ended.
    rec.record(snapshot(T0 + 3 * MIN, [usage("a", total=1, created=T0 + 3 * MIN), usage("b", total=1)]))
    assert history.ended_users(since=T0) == []
    assert UserLife.objects.get(user_id="a", ended_at__isnull=True).life == 2


def test_history_a_source_gap_reopens_the_same_life():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=4)]))
    rec.record(snapshot(T0 + MIN, []))  # the source failed with nothing to show
    rec.record(snapshot(T0 + 2 * MIN, [usage("a", total=5)]))
    assert list(UserLife.objects.values_list("life", "ended_at")) == [(1, None)]
    assert history.window_stats(window=timedelta(minutes=5), now=T0 + 2 * MIN)["a"].requests == 1


def test_history_restart_continues_open_lives_without_double_counting():
    first = recorder()
    first.record(snapshot(T0, [usage("a", total=10, avg=10.0), usage("gone", total=1)]))
    first.record(snapshot(T0 + MIN, [usage("a", total=12, avg=10.0), usage("gone", total=1)]))
    # A new process: a new recorder reads the open lives back from the database.
    second = recorder()
    result = second.record(snapshot(T0 + 5 * MIN, [usage("a", total=15, avg=10.0)]))
    assert result.new_lives == 0 and result.ended == 1
    assert UserLife.objects.get(user_id="a").life == 1
    # "gone" vanished while the dashboard was down: ended when it was last seen, not at restart.
    assert UserLife.objects.get(user_id="gone").ended_at == T0 + MIN
    stats = history.window_stats(window=timedelta(minutes=10), now=T0 + 5 * MIN)["a"]
    assert stats.requests == 5  # 10 -> 12 -> 15


def test_history_failed_write_leaves_no_phantom_lives():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=1)]))
    with pytest.raises(IntegrityError):  # a second totals row at the same instant
        rec.record(snapshot(T0, [usage("a", total=2), usage("b", total=1)]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=3), usage("b", total=1)]))
    assert list(UserLife.objects.order_by("user_id").values_list("user_id", "life")) == [("a", 1), ("b", 1)]
    assert history.window_stats(window=timedelta(minutes=5), now=T0 + MIN)["a"].requests == 2


def test_history_user_series_buckets_rates_and_carries_gauges():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=0, ref=1, stack=2)]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=6, errors=3, avg=20.0, ref=2, stack=4)]))
    series = history.user_series(user_id="a", window=timedelta(minutes=15), now=T0 + 3 * MIN, points=15)
    assert series["step"] == 60.0 and len(series["t"]) == 15
    assert sum(series["requests_per_min"]) == 6.0
    assert sum(series["errors_per_min"]) == 3.0
    assert [v for v in series["latency_ms"] if v is not None] == [20.0]
    assert series["exit_stack"][-1] == 4  # carried forward after the last change
    assert series["in_flight"][-1] == 2
    assert series["lives"][0]["life"] == 1
    overview = history.overview_series(window=timedelta(minutes=15), now=T0 + 3 * MIN, points=15)
    assert sum(overview["requests_per_min"]) == 6.0 and max(v or 0 for v in overview["users"]) == 1


def test_history_sparklines_one_query_for_a_page_of_users():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=0), usage("b", total=0)]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=6), usage("b", total=0)]))
    lines = history.sparklines(user_ids=["a", "b", "nobody"], window=timedelta(minutes=30), now=T0 + MIN, points=30)
    assert set(lines) == {"a", "b", "nobody"} and len(lines["a"]) == 30
    assert sum(lines["a"]) == 6.0 and sum(lines["b"]) == 0.0 and sum(lines["nobody"]) == 0.0


def test_history_retention_prunes_old_and_keeps_recent():
    now = T0
    rec = recorder()
    old, week_ago, recent = now - timedelta(days=100), now - timedelta(days=8), now - timedelta(hours=2)
    rec.record(snapshot(old, [usage("a", total=1), usage("early", total=1)]))
    rec.record(snapshot(old + MIN, [usage("a", total=2)]))  # "early" ends 100 days ago
    rec.record(snapshot(week_ago, [usage("a", total=5)]))
    rec.record(snapshot(recent, [usage("a", total=9)]))
    rec.maintain(now=now)
    # Raw samples: only the recent ones survive the 7-day retention.
    assert [s.ts for s in UserSample.objects.order_by("ts")] == [recent]
    assert [t.ts for t in TotalsSample.objects.order_by("ts")] == [recent]
    # Hourly roll-ups: 8 days ago and 2 hours ago are kept, 100 days ago is gone.
    hours = sorted(h.hour for h in UserHourly.objects.all())
    assert hours == [week_ago.replace(minute=0), recent.replace(minute=0)]
    assert not TotalsHourly.objects.filter(hour__lt=now - timedelta(days=90)).exists()
    assert not UserLife.objects.filter(user_id="early").exists()
    # Rates over the rolled-up days still add up: 2 -> 5 -> 9 within the last 9 days.
    assert history.window_stats(window=timedelta(days=7), now=now)["a"].requests == 4
    assert history.window_stats(window=timedelta(days=9), now=now)["a"].requests == 7
    assert history.overview_stats(window=timedelta(days=9), now=now).requests == 7


def test_history_seven_day_series_read_rollups_and_recent_raw():
    rec = recorder()
    hour = timedelta(hours=1)
    rec.record(snapshot(T0 - 5 * hour, [usage("a", total=0, stack=1)]))
    rec.record(snapshot(T0 - 4 * hour, [usage("a", total=10, stack=2)]))
    rec.record(snapshot(T0 - 2 * hour, [usage("a", total=30, stack=5)]))
    rec.record(snapshot(T0 + timedelta(minutes=10), [usage("a", total=36, stack=5)]))  # not rolled up yet
    assert history.rollup(now=T0 + timedelta(minutes=20)) >= 2
    series = history.user_series(user_id="a", window=timedelta(days=7), now=T0 + timedelta(minutes=20))
    assert series["step"] == 3600.0 and len(series["t"]) == 168
    assert sum(series["requests_per_min"]) * 60 == pytest.approx(36)  # 10 + 20 from roll-ups, 6 raw
    assert series["exit_stack"][-1] == 5
    # Each hour in the bucket that ends when the hour ends: 08:00-09:00 is labelled 09:00.
    per_bucket = {t: round(v * 60) for t, v in zip(series["t"], series["requests_per_min"], strict=True) if v}
    assert per_bucket == {
        (T0 - 3 * hour).timestamp(): 10,
        (T0 - hour).timestamp(): 20,
        (T0 + hour).timestamp(): 6,
    }
    overview = history.overview_series(window=timedelta(days=7), now=T0 + timedelta(minutes=20))
    assert sum(overview["requests_per_min"]) * 60 == pytest.approx(36)


def test_history_rollup_is_idempotent():
    rec = recorder()
    rec.record(snapshot(T0 - 3 * timedelta(hours=1), [usage("a", total=1)]))
    rec.record(snapshot(T0 - 2 * timedelta(hours=1), [usage("a", total=3)]))
    assert history.rollup(now=T0) == 2
    assert history.rollup(now=T0) == 0
    assert UserHourly.objects.count() == 2


def test_history_flags_idle_evicted_stuck_rising_erroring():
    now = T0
    cfg = {"IDLE_AFTER": 60, "STUCK_AFTER": 300, "RISING_MIN": 3, "ERROR_RATE": 0.2, "ERROR_MIN_REQUESTS": 5}
    cfg["WINDOW"] = "1h"
    idle = usage("idle", last=now - 10 * MIN)
    [flag] = history.user_flags(idle, stats=history.WindowStats(), timeout=timedelta(minutes=30), now=now, config=cfg)
    assert (flag.name, flag.label) == ("idle", "idle 10 min, evicted in 20 min")
    stuck = usage("stuck", ref=2, last=now - 10 * MIN)
    assert [f.name for f in history.user_flags(stuck, now=now, config=cfg)] == ["stuck"]
    busy = usage("busy", ref=1, last=now, total=100, errors=0)
    grow = history.WindowStats(requests=10, errors=5, exit_stack_growth=4)
    flags = history.user_flags(busy, stats=grow, now=now, config=cfg)
    assert [f.name for f in flags] == ["rising", "erroring"]
    assert "5 of 10 requests failed" in flags[1].detail
    # Below the minimum number of requests an error share means nothing.
    few = history.WindowStats(requests=2, errors=2)
    assert history.user_flags(busy, stats=few, now=now, config=cfg) == []


def test_history_flags_from_recorded_window():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=0, stack=1)]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=10, errors=5, stack=6, ref=1, last=T0 + MIN)]))
    snap = snapshot(T0 + MIN, [usage("a", total=10, errors=5, stack=6, ref=1, last=T0 + MIN)])
    flags = history.users_flags(snap, timeouts={}, window=timedelta(hours=1), now=T0 + MIN)
    assert [f.name for f in flags["a"]] == ["rising", "erroring"]


@pytest.mark.django_db(transaction=True)
async def test_history_listener_writes_off_the_loop():
    rec = recorder()
    await rec(snapshot(T0, [usage("a", total=1)]))
    await rec(snapshot(T0 + MIN, [usage("a", total=2)]))
    await rec.aclose()
    from asgiref.sync import sync_to_async
    from django.db import connections

    def count_and_close() -> int:
        try:
            return UserSample.objects.count()
        finally:
            connections.close_all()  # this helper thread's connection would outlive the test database

    count = await sync_to_async(count_and_close)()
    assert count >= 1  # coalesced or not, the newest snapshot is written
    assert rec.records >= 1


def test_history_window_parse():
    assert history.window_parse("24h") == timedelta(hours=24)
    assert history.window_parse(None, default="15m") == timedelta(minutes=15)
    with pytest.raises(ValueError, match="window must be one of"):
        history.window_parse("2y")


@pytest.mark.postgres
def test_history_store_on_postgresql():
    from django.db import connection

    assert connection.vendor == "postgresql"
    rec = recorder()
    users = [usage(f"user-{i}", total=i, avg=10.0) for i in range(2000)]
    rec.record(snapshot(T0, users))
    users = [usage(f"user-{i}", total=i + 3, errors=1, avg=20.0) for i in range(2000)]
    result = rec.record(snapshot(T0 + MIN, users))
    assert result.samples == 2000
    stats = history.window_stats(window=timedelta(minutes=5), now=T0 + MIN)
    assert stats["user-7"].requests == 3 and stats["user-7"].errors == 1
    assert history.overview_stats(window=timedelta(minutes=5), now=T0 + MIN).requests == 6000
    assert history.rollup(now=T0 + timedelta(hours=2)) == 1


def test_history_sample_columns_match_the_model():
    # _insert_samples writes raw rows in this order: a new column must be added there too.
    assert history.SAMPLE_COLUMNS == tuple(f.column for f in UserSample._meta.concrete_fields)


@pytest.mark.django_db(transaction=True)
async def test_history_user_evicted_by_a_real_session_manager_is_ended_then_reborn(install_service):
    from asgiref.sync import sync_to_async

    from usermetrics.runtime import SessionManager
    from usermetrics.sources import LocalSource

    clock = [T0]
    manager = SessionManager(per_user_workflow_timeout=timedelta(minutes=30), clock=lambda: clock[0])
    try:
        service = install_service([LocalSource("local", manager)])
        rec = recorder()
        for _ in range(3):
            async with manager.session("ada") as builder:
                builder.add_function("tool", object())
        await sync_to_async(rec.record)(await service.refresh())
        clock[0] = T0 + timedelta(minutes=31)
        assert await manager.cleanup_idle() == 1  # NAT-style eviction: the counters are gone
        await sync_to_async(rec.record)(await service.refresh())
        [ended] = await sync_to_async(history.ended_users)(since=T0 - timedelta(days=1))
        assert ended.user_id == "ada" and ended.usage.requests.total_requests == 3
        assert ended.usage.memory.per_user_functions_count == 1
        # The user comes back: a fresh workflow, a new life counted from zero.
        async with manager.session("ada"):
            pass
        await sync_to_async(rec.record)(await service.refresh())
        lives = await sync_to_async(
            lambda: list(UserLife.objects.filter(user_id="ada").values_list("life", "ended_at"))
        )()
        assert [life for life, _ in lives] == [1, 2] and lives[1][1] is None
        assert await sync_to_async(history.ended_users)(since=T0 - timedelta(days=1)) == []
    finally:
        await manager.aclose()
