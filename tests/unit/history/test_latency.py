"""The companions' figures in the history: the column's bytes, the reset rule, windowed percentiles, roll-ups."""

from __future__ import annotations

from datetime import timedelta

import pytest
from usermetrics_nat.histogram import BUCKETS, percentiles

from tests.support.history_helpers import MIN, T0, histogram, recorder, snapshot, usage
from usermetrics.extras import Extras
from usermetrics.history.latency import Cumulative, change, decode, encode, summed
from usermetrics.history.query import overview_stats, window_stats
from usermetrics.history.rollup import rollup
from usermetrics.history.series import user_series
from usermetrics.models import TotalsSample, UserHourly, UserSample

FAST = [10.0] * 10
SLOW = [1000.0] * 20


def test_latency_column_round_trips_and_is_small():
    d = Cumulative(histogram(*FAST, *SLOW, 5.0), 1234, 56789)
    raw = encode(d, 3)
    back = decode(raw)
    assert (tuple(back.latency), back.wait_ms, back.run_ms, back.queued) == (d.latency, 1234, 56789, 3)
    assert len(raw) <= 16  # three buckets and three small numbers


@pytest.mark.parametrize("raw", [b"\x00\x00\x00\x63\x01", b"\x00\x00", b"\x00\x00\x00\x01", b"\x00\x00\x00\x01\x80"])
def test_latency_column_refuses_bytes_it_did_not_write(raw):
    with pytest.raises(ValueError):
        decode(raw)


def test_latency_change_is_never_negative_a_reset_counts_from_zero():
    old = Cumulative(histogram(*FAST, *SLOW), 500, 900)
    assert change(Cumulative(histogram(*FAST, *SLOW, *SLOW), 600, 950), old) == Cumulative(histogram(*SLOW), 100, 50)
    restarted = Cumulative(histogram(2.0, 2.0), 10, 20)  # a new count (a worker's new life): from zero
    assert change(restarted, old) == restarted
    assert change(restarted, None) == restarted


def x(*latencies: float, queued: int = 0, wait: float = 0.0, run: float = 0.0) -> Extras:
    return Extras(latency=histogram(*latencies), queued=queued, wait_ms=wait, run_ms=run)


def _warm(rec):
    rec.record(snapshot(T0 - MIN, []))  # the recorder has started: users born later count from zero


@pytest.mark.django_db
def test_latency_window_percentiles_sum_the_window_changes():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=10, avg=10)], extras={"a": x(*FAST, wait=5, run=100)}))
    later = x(*FAST, *SLOW, queued=2, wait=7.4, run=20_100)
    rec.record(snapshot(T0 + MIN, [usage("a", total=30, avg=670, ref=10)], extras={"a": later}))
    whole = window_stats(window=timedelta(minutes=5), now=T0 + MIN)["a"]
    assert whole.percentiles == percentiles(histogram(*FAST, *SLOW))
    assert (whole.extras.wait_ms, whole.extras.run_ms, whole.extras.queued) == (7, 20_100, 2)
    last = window_stats(window=timedelta(seconds=30), now=T0 + MIN)["a"]
    assert last.percentiles == percentiles(histogram(*SLOW))  # only the window's requests
    doc = last.as_dict()
    assert (doc["p95_ms"], doc["max_queued"]) == (last.percentiles[1], 2)


@pytest.mark.django_db
def test_latency_new_life_counts_from_zero_never_negative():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=30, avg=10)], extras={"a": x(*FAST, *SLOW)}))
    # Evicted and created again: NAT's counters and the histogram start over.
    rec.record(snapshot(T0 + MIN, [usage("a", total=2, avg=2, created=T0)], extras={"a": x(2.0, 2.0)}))
    newest = UserSample.objects.order_by("-ts").first()
    assert tuple(decode(newest.extras).latency) == histogram(2.0, 2.0)
    assert window_stats(window=timedelta(seconds=30), now=T0 + MIN)["a"].percentiles == percentiles(histogram(2, 2))


@pytest.mark.django_db
def test_latency_after_a_restart_the_first_sample_is_a_baseline():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=10, avg=10)], extras={"a": x(*FAST)}))
    again = recorder()  # a new producer: the open life goes on, its histogram's base is not stored
    again.record(snapshot(T0 + MIN, [usage("a", total=30, avg=670)], extras={"a": x(*FAST, *SLOW, queued=1)}))
    sample = UserSample.objects.order_by("-ts").first()
    assert sample.d_requests == 20
    assert decode(sample.extras).latency == [0] * BUCKETS and decode(sample.extras).queued == 1
    again.record(snapshot(T0 + 2 * MIN, [usage("a", total=31, avg=670)], extras={"a": x(*FAST, *SLOW, 3.0)}))
    assert tuple(decode(UserSample.objects.order_by("-ts").first().extras).latency) == histogram(3.0)


@pytest.mark.django_db
def test_latency_users_without_extras_store_none_and_have_no_percentiles():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=3, avg=10), usage("b", total=3, avg=10)], extras={"b": x(5, 5, 5)}))
    assert UserSample.objects.get(life__user_id="a").extras is None
    stats = window_stats(window=timedelta(minutes=5), now=T0)
    assert stats["a"].percentiles == (None, None, None) and stats["a"].as_dict()["max_queued"] is None
    assert stats["b"].percentiles == percentiles(histogram(5, 5, 5))


@pytest.mark.django_db
def test_latency_overview_and_totals_add_every_user():
    rec = recorder()
    _warm(rec)
    users = [usage("a", total=10, avg=10), usage("b", total=20, avg=1000)]
    rec.record(snapshot(T0, users, extras={"a": x(*FAST, queued=1), "b": x(*SLOW, queued=2)}))
    row = TotalsSample.objects.get(ts=T0)
    assert decode(row.extras).queued == 3
    stats = overview_stats(window=timedelta(minutes=5), now=T0)
    assert stats.percentiles == percentiles(histogram(*FAST, *SLOW))
    assert rec.observed_histogram == list(histogram(*FAST, *SLOW))


@pytest.mark.django_db
def test_latency_rollup_sums_the_bucket_changes():
    rec = recorder()
    _warm(rec)
    seen: list[float] = []
    for i in range(3):
        seen += [10.0 * (i + 1)] * 5 + [2000.0]
        rec.record(snapshot(T0 + i * MIN, [usage("a", total=len(seen), avg=100)], extras={"a": x(*seen, queued=i)}))
    now = T0 + timedelta(hours=2, minutes=30)
    raw = window_stats(window=timedelta(hours=3), now=now)["a"]
    rollup(now=now)
    hour = UserHourly.objects.get()
    assert tuple(decode(hour.extras).latency) == histogram(*seen) and decode(hour.extras).queued == 2
    UserSample.objects.all().delete()  # the window now reads the roll-up alone
    rolled = window_stats(window=timedelta(hours=3), now=now)["a"]
    assert rolled.percentiles == raw.percentiles == percentiles(histogram(*seen))
    assert overview_stats(window=timedelta(hours=3), now=now).percentiles == raw.percentiles


@pytest.mark.django_db
def test_latency_user_series_draws_percentiles_and_queue_per_point():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=10, avg=10, ref=3)], extras={"a": x(*FAST, queued=0)}))
    rec.record(snapshot(T0 + MIN, [usage("a", total=30, avg=670, ref=9)], extras={"a": x(*FAST, *SLOW, queued=1)}))
    doc = user_series(user_id="a", window=timedelta(minutes=15), now=T0 + 1.5 * MIN, points=15)  # a sample a point
    assert len(doc["p95_ms"]) == len(doc["queued"]) == len(doc["t"]) == 15
    fast, slow = percentiles(histogram(*FAST))[1], percentiles(histogram(*SLOW))[1]
    assert [p for p in doc["p95_ms"] if p is not None] == [fast, slow]
    assert [q for q in doc["queued"] if q is not None][-2:] == [0, 1]
    assert summed([]) is None
