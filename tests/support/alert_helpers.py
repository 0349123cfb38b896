"""Alert test helpers: a loopback receiver fixture, the ALERTS settings, a producer with the engine, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps as django_apps

from tests.support.alert_receiver import Receiver
from tests.support.factories import ManualClock
from usermetrics import testing
from usermetrics.alerts.engine import AlertEngine
from usermetrics.conf import get_config
from usermetrics.models import AlertRule, Delivery
from usermetrics.monitor import MonitorService
from usermetrics.publish.producer import FlagTracker, Producer


@pytest.fixture
def seeded_rules(transactional_db) -> None:
    """The alert rules a new database starts with, written as its migration does.

    Transactional tests start from whatever the test before them left (a flushed database, or the
    migrated one); ``serialized_rollback`` reloaded a copy of the migrated database instead, and
    failed on duplicate content types after a non-transactional test.
    """
    import_module("usermetrics.migrations.0004_alerts").rules_seed(django_apps, None)


@pytest.fixture
def receiver() -> Iterator[Callable[[], Receiver]]:
    made: list[Receiver] = []

    def make() -> Receiver:
        made.append(Receiver().start())
        return made[-1]

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def alerts_to(settings) -> Callable[..., None]:
    """Point the default route at ``url`` (and override other ALERTS keys)."""

    def configure(url: str, **extra: Any) -> None:
        settings.USERMETRICS = {**settings.USERMETRICS, "ALERTS": {"URLS": [url], "RETRY_MIN": 0.2, **extra}}

    return configure


@pytest.fixture
async def producer_with_alerts() -> AsyncIterator[Callable[..., Producer]]:
    """A producer over the given sources with the alert engine (and the flags) on; closed after the test."""
    made: list[Producer] = []
    previous = testing.face_install(None)

    def make(sources: list, *, clock: ManualClock | None = None, flags: bool = False) -> Producer:
        face = testing.face_local()
        testing.face_install(face)
        monitor = MonitorService(sources, interval=3600, clock=clock or ManualClock())
        producer = testing.producer_local(face, monitor=monitor)
        producer.flag_tracker = FlagTracker() if flags else None
        producer.alerts = AlertEngine(get_config().alerts)
        made.append(producer)
        return producer

    yield make
    for producer in made:
        await producer.close()
    testing.face_install(previous)


def rule_set(name: str, **fields: Any) -> None:
    AlertRule.objects.filter(name=name).update(**fields)


def outbox_settled() -> bool:
    """Nothing in the outbox is untried or being sent (an attempt in progress has no error yet).

    A delivery that failed waits for its retry; ``last_error`` is cleared only when it is sent.
    """
    return not Delivery.objects.filter(state="pending", last_error="").exists()


async def until(predicate: Callable[[], bool]) -> None:
    """Wait (polling the database) until ``predicate()`` holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 30  # a bound for a loaded 2-core machine, not a timing assertion
    while loop.time() < end:
        if await sync_to_async(predicate)():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting")


async def settle(producer: Producer) -> None:
    """Let the engine evaluate what it was handed and the courier (its thread) send what is due."""
    await producer.alerts.flush()
    await until(outbox_settled)
