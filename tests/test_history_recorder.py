"""The recorder: the monitor's listener writes off the event loop, coalesces, and maintains on schedule."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from tests.history_helpers import MIN, T0, recorder, snapshot, usage
from usermetrics.models import TotalsHourly, UserSample


@pytest.mark.django_db(transaction=True)
async def test_history_recorder_writes_off_the_loop():
    rec = recorder()
    await rec(snapshot(T0, [usage("a", total=1)]))
    await rec(snapshot(T0 + MIN, [usage("a", total=2)]))
    await rec.aclose()

    def count_and_close() -> int:
        try:
            return UserSample.objects.count()
        finally:
            connections.close_all()  # this helper thread's connection would outlive the test database

    assert await sync_to_async(count_and_close)() >= 1  # coalesced or not, the newest snapshot is written
    assert rec.records >= 1


@pytest.mark.django_db
def test_history_recorder_maintains_every_maintenance_interval():
    rec = recorder(maintenance_interval=3600.0)
    hour = 60 * MIN
    rec.record(snapshot(T0 - 3 * hour, [usage("a", total=1)]))  # the first record maintains: nothing to roll up
    rec.record(snapshot(T0 - 2 * hour - 30 * MIN, [usage("a", total=2)]))  # within the interval: no roll-up
    assert TotalsHourly.objects.count() == 0
    rec.record(snapshot(T0, [usage("a", total=4)]))  # three hours on: the complete hours are rolled up
    assert TotalsHourly.objects.filter(hour=T0 - 3 * hour).exists()
