"""History series: chart buckets with gauges carried forward, sparklines, 7-day series over roll-ups."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.history_helpers import MIN, T0, recorder, snapshot, usage
from usermetrics.history.rollup import rollup
from usermetrics.history.series import overview_series, sparklines, user_series

pytestmark = pytest.mark.django_db


def test_history_series_buckets_rates_and_carries_gauges():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=0, ref=1, stack=2)]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=6, errors=3, avg=20.0, ref=2, stack=4)]))
    series = user_series(user_id="a", window=timedelta(minutes=15), now=T0 + 3 * MIN, points=15)
    assert series["step"] == 60.0 and len(series["t"]) == 15 and series["window"] == "15m"
    assert sum(series["requests_per_min"]) == 6.0
    assert sum(series["errors_per_min"]) == 3.0
    assert [v for v in series["latency_ms"] if v is not None] == [20.0]
    assert series["exit_stack"][-1] == 4  # carried forward after the last change
    assert series["in_flight"][-1] == 2
    assert series["lives"][0]["life"] == 1
    overview = overview_series(window=timedelta(minutes=15), now=T0 + 3 * MIN, points=15)
    assert sum(overview["requests_per_min"]) == 6.0 and max(v or 0 for v in overview["users"]) == 1


def test_history_series_sparklines_one_query_for_a_page_of_users():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=0), usage("b", total=0)]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=6), usage("b", total=0)]))
    lines = sparklines(user_ids=["a", "b", "nobody"], window=timedelta(minutes=30), now=T0 + MIN, points=30)
    assert set(lines) == {"a", "b", "nobody"} and len(lines["a"]) == 30
    assert sum(lines["a"]) == 6.0 and sum(lines["b"]) == 0.0 and sum(lines["nobody"]) == 0.0


def test_history_series_seven_days_read_rollups_and_recent_raw():
    rec = recorder()
    hour = timedelta(hours=1)
    rec.record(snapshot(T0 - 5 * hour, [usage("a", total=0, stack=1)]))
    rec.record(snapshot(T0 - 4 * hour, [usage("a", total=10, stack=2)]))
    rec.record(snapshot(T0 - 2 * hour, [usage("a", total=30, stack=5)]))
    rec.record(snapshot(T0 + timedelta(minutes=10), [usage("a", total=36, stack=5)]))  # not rolled up yet
    assert rollup(now=T0 + timedelta(minutes=20)) >= 2
    series = user_series(user_id="a", window=timedelta(days=7), now=T0 + timedelta(minutes=20))
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
    overview = overview_series(window=timedelta(days=7), now=T0 + timedelta(minutes=20))
    assert sum(overview["requests_per_min"]) * 60 == pytest.approx(36)
