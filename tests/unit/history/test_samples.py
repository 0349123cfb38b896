"""History samples: the raw row layout, the totals row, and bulk writes on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.history_helpers import MIN, T0, recorder, snapshot, usage
from usermetrics.history.query import overview_stats, window_stats
from usermetrics.history.rollup import rollup
from usermetrics.history.samples import SAMPLE_COLUMNS, counters_of, totals_row
from usermetrics.models import UserSample

pytestmark = pytest.mark.django_db


def test_history_samples_columns_match_the_model():
    # insert_samples writes raw rows in this order: a new column must be added there too.
    assert SAMPLE_COLUMNS == tuple(f.column for f in UserSample._meta.concrete_fields)


def test_history_samples_totals_row_uses_the_snapshot_totals():
    liar = usage("liar", total=3, avg=10.0)
    liar = liar.model_copy(update={"session": liar.session.model_copy(update={"is_active": True})})
    busy = usage("busy", total=1, avg=50.0, ref=2, stack=4)
    row = totals_row(snapshot(T0, [liar, busy]), d_requests=4, d_errors=0, d_latency_ms=80.0)
    # "active" is ref_count > 0, as everywhere: the record claiming is_active with no refs is idle.
    assert (row.users, row.active, row.in_flight, row.requests, row.exit_stack) == (2, 1, 2, 4, 4)
    assert row.avg_latency_ms == 20.0 and row.sources_up == row.sources_total == 1
    assert counters_of(busy) == (2, 1, 0, 50.0, 1, 0, 4)


@pytest.mark.postgres
def test_history_samples_store_on_postgresql():
    from django.db import connection

    assert connection.vendor == "postgresql"
    rec = recorder()
    users = [usage(f"user-{i}", total=i, avg=10.0) for i in range(2000)]
    rec.record(snapshot(T0, users))
    users = [usage(f"user-{i}", total=i + 3, errors=1, avg=20.0) for i in range(2000)]
    result = rec.record(snapshot(T0 + MIN, users))
    assert result.samples == 2000
    stats = window_stats(window=timedelta(minutes=5), now=T0 + MIN)
    assert stats["user-7"].requests == 3 and stats["user-7"].errors == 1
    assert overview_stats(window=timedelta(minutes=5), now=T0 + MIN).requests == 6000
    assert rollup(now=T0 + timedelta(hours=2)) == 1
