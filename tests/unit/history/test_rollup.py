"""History roll-ups and retention: complete hours rolled up once, old rows pruned, long windows still add up."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.history_helpers import CONFIG, MIN, T0, recorder, snapshot, usage
from usermetrics.history.query import overview_stats, window_stats
from usermetrics.history.rollup import maintain, rollup
from usermetrics.models import TotalsHourly, TotalsSample, UserHourly, UserLife, UserSample

pytestmark = pytest.mark.django_db


def test_history_rollup_retention_prunes_old_and_keeps_recent():
    now = T0
    rec = recorder()
    old, week_ago, recent = now - timedelta(days=100), now - timedelta(days=8), now - timedelta(hours=2)
    rec.record(snapshot(old, [usage("a", total=1), usage("early", total=1)]))
    rec.record(snapshot(old + MIN, [usage("a", total=2)]))  # "early" ends 100 days ago
    rec.record(snapshot(week_ago, [usage("a", total=5)]))
    rec.record(snapshot(recent, [usage("a", total=9)]))
    maintain(CONFIG, now=now)
    # Raw samples: only the recent ones survive the 7-day retention.
    assert [s.ts for s in UserSample.objects.order_by("ts")] == [recent]
    assert [t.ts for t in TotalsSample.objects.order_by("ts")] == [recent]
    # Hourly roll-ups: 8 days ago and 2 hours ago are kept, 100 days ago is gone.
    hours = sorted(h.hour for h in UserHourly.objects.all())
    assert hours == [week_ago.replace(minute=0), recent.replace(minute=0)]
    assert not TotalsHourly.objects.filter(hour__lt=now - timedelta(days=90)).exists()
    assert not UserLife.objects.filter(user_id="early").exists()
    # Rates over the rolled-up days still add up: 2 -> 5 -> 9 within the last 9 days.
    assert window_stats(window=timedelta(days=7), now=now)["a"].requests == 4
    assert window_stats(window=timedelta(days=9), now=now)["a"].requests == 7
    assert overview_stats(window=timedelta(days=9), now=now).requests == 7


def test_history_rollup_is_idempotent():
    rec = recorder()
    rec.record(snapshot(T0 - 3 * timedelta(hours=1), [usage("a", total=1)]))
    rec.record(snapshot(T0 - 2 * timedelta(hours=1), [usage("a", total=3)]))
    assert rollup(now=T0) == 2
    assert rollup(now=T0) == 0
    assert UserHourly.objects.count() == 2
