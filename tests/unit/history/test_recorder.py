"""The recorder: the monitor's listener writes off the event loop, coalesces, and maintains on schedule."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from tests.support.history_helpers import MIN, T0, recorder, snapshot, usage
from usermetrics.models import TotalsHourly, UserSample


@pytest.mark.django_db(transaction=True)
async def test_history_recorder_hands_the_write_to_its_thread_and_coalesces():
    rec = recorder()
    release = threading.Event()
    real = rec.book.record
    threads: list[str] = []

    def slow(snap):
        threads.append(threading.current_thread().name)
        release.wait(timeout=30)
        return real(snap)

    rec.book.record = slow
    await rec(snapshot(T0, [usage("a", total=1)]))
    for _ in range(500):  # until the writer's thread has the first snapshot
        if threads:
            break
        await asyncio.sleep(0.01)
    await rec(snapshot(T0 + MIN, [usage("a", total=2)]))
    await rec(snapshot(T0 + 2 * MIN, [usage("a", total=3)]))
    assert rec.records == 0  # the loop went on while the first write waits in the writer's thread
    release.set()
    await rec.aclose()
    assert threads and all(name.startswith("usermetrics-history") for name in threads)
    assert rec.records == 2  # the first snapshot, then only the newest of the ones that waited

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
