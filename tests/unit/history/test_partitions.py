"""Day partitions on PostgreSQL: made ahead and on demand, dropped whole by retention, the converting migration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.support.history_helpers import CONFIG, MIN, T0, recorder, snapshot, usage
from usermetrics.clock import utcnow
from usermetrics.history.partitions import DAY, day_of, legacy_name, partition_name, partitions
from usermetrics.history.query import window_stats
from usermetrics.history.rollup import maintain
from usermetrics.history.series import user_series
from usermetrics.models import UserHourly, UserLife, UserSample

pytestmark = [pytest.mark.postgres]
SAMPLES, HOURLY = UserSample._meta.db_table, UserHourly._meta.db_table


def _rows_by_partition(table: str) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1")
        return dict(cursor.fetchall())


@pytest.mark.django_db
def test_partitions_maintenance_makes_the_coming_days_and_tomorrow_takes_rows():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=1)]))  # the first record runs the maintenance pass
    for table in (SAMPLES, HOURLY):
        names = partitions(connection, table)
        assert {partition_name(table, day_of(T0) + DAY * n) for n in range(3)} <= names.keys()
    rec.record(snapshot(T0 + DAY, [usage("a", total=4)]))
    assert _rows_by_partition(SAMPLES) == {
        partition_name(SAMPLES, day_of(T0)): 1,
        partition_name(SAMPLES, day_of(T0 + DAY)): 1,
    }
    assert window_stats(window=timedelta(days=2), now=T0 + DAY)["a"].requests == 3  # 1 -> 4


@pytest.mark.django_db
def test_partitions_an_insert_on_a_day_without_one_makes_it():
    far = T0 + 40 * DAY  # far past what the maintenance pass made
    recorder().record(snapshot(far, [usage("a", total=2)]))
    assert _rows_by_partition(SAMPLES) == {partition_name(SAMPLES, day_of(far)): 1}
    assert UserSample.objects.get().ts == far


@pytest.mark.django_db
def test_partitions_retention_drops_whole_days_after_the_rollup():
    now = T0  # 12:00 UTC: the cut (7 days back) falls inside the day of ``straddling``
    ancient, old = now - 100 * DAY, now - 9 * DAY
    straddling = now - 7 * DAY - timedelta(hours=2)  # older than the cut, but its day is not wholly older
    recent = now - timedelta(hours=2)
    rec = recorder()
    for n, ts in enumerate((ancient, old, straddling, recent)):
        rec.record(snapshot(ts, [usage("a", total=2 * n + 1)]))
        rec.record(snapshot(ts + MIN, [usage("a", total=2 * n + 2)]))
    out = maintain(CONFIG, now=now)
    assert out["samples"] == 0 and out["user_hours"] == 0  # nothing deleted row by row
    sample_days = {day for _, day in partitions(connection, SAMPLES).values()}
    assert day_of(ancient) not in sample_days and day_of(old) not in sample_days
    assert {day_of(straddling), day_of(recent)} <= sample_days
    assert sorted(UserSample.objects.values_list("ts", flat=True)) == [
        straddling,
        straddling + MIN,
        recent,
        recent + MIN,
    ]
    # The roll-ups were written before the raw days went: only the 100-day-old hour is past their retention.
    hours = sorted(UserHourly.objects.values_list("hour", flat=True))
    assert hours == [old.replace(minute=0), straddling.replace(minute=0), recent.replace(minute=0)]
    assert day_of(ancient) not in {day for _, day in partitions(connection, HOURLY).values()}
    # Windows read the same as before: 2 -> 8 within 10 days, from roll-ups and raw rows; the rows of the
    # straddling day that are kept past the cut are not counted in the last 7 days (6 -> 8).
    assert window_stats(window=10 * DAY, now=now)["a"].requests == 6
    assert window_stats(window=7 * DAY, now=now)["a"].requests == 2
    chart = user_series(user_id="a", window=7 * DAY, now=now)
    assert sum(chart["requests_per_min"]) > 0


@pytest.mark.django_db(transaction=True)
def test_partitions_migration_keeps_the_rows_of_a_plain_table_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate([("usermetrics", "0009_history_tokens")])
    assert partitions(connection, SAMPLES) == {}
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=1), usage("b", total=1)]))
    rec.record(snapshot(T0 + timedelta(hours=2), [usage("a", total=5), usage("b", total=2)]))
    maintain(CONFIG, now=T0 + timedelta(hours=3))  # roll-ups, into the plain tables
    samples, hours = UserSample.objects.count(), UserHourly.objects.count()
    assert (samples, hours) == (4, 4)

    executor = MigrationExecutor(connection)
    executor.migrate([("usermetrics", "0010_history_day_partitions")])
    today = day_of(utcnow())
    assert _rows_by_partition(SAMPLES) == {legacy_name(SAMPLES, today): samples}
    assert _rows_by_partition(HOURLY) == {legacy_name(HOURLY, today): hours}
    # The ORM reads them as before, and new rows go to the days after.
    assert window_stats(window=timedelta(hours=3), now=T0 + timedelta(hours=3))["a"].requests == 4
    life = UserLife.objects.get(user_id="a")
    later = utcnow() + DAY
    recorder().record(snapshot(later, [usage("a", total=9, created=life.created_at)]))
    assert _rows_by_partition(SAMPLES)[partition_name(SAMPLES, day_of(later))] == 1
    new = UserHourly.objects.create(life=life, hour=later.replace(minute=0, second=0, microsecond=0), **_ZEROS)
    assert new.pk > max(UserHourly.objects.exclude(pk=new.pk).values_list("pk", flat=True))

    executor = MigrationExecutor(connection)
    executor.migrate([("usermetrics", "0009_history_tokens")])  # and back: plain tables, every row copied
    assert partitions(connection, SAMPLES) == {} and UserSample.objects.count() == samples + 1
    assert UserHourly.objects.count() == hours + 1
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


_ZEROS = {
    "d_requests": 0,
    "d_errors": 0,
    "d_latency_ms": 0.0,
    "d_exit_stack": 0,
    "d_functions": 0,
    "max_ref_count": 0,
    "max_exit_stack": 0,
}
