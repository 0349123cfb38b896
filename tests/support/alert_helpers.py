"""Alert test helpers: a receiver fixture, the ALERTS settings, a producer with the engine, a secret route, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps as django_apps

from tests.support.alert_receiver import Receiver
from tests.support.factories import BASE_TIME, ManualClock, StaticSource, usage
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


SECRET = "s3cr3t-pass-word"


TOKEN = "tok-4f9a8b7c6d5e"


def secret_url(port: int) -> str:
    """A route to the receiver whose password, path and header are secrets."""
    return f"json://ops:{SECRET}@127.0.0.1:{port}/hook/{TOKEN}?+X-Api-Key={TOKEN}"


async def firing_source_down(producer_with_alerts, *, url: str | None = None) -> None:
    """A producer whose one source never answers: source-down fires at once (for 0)."""
    await sync_to_async(rule_set)("source-down", for_seconds=0, clear_seconds=0)
    source = StaticSource("nat-b", [])
    source.error = RuntimeError("boom")
    producer = producer_with_alerts([StaticSource("nat-a", [usage("ada")]), source], clock=ManualClock(BASE_TIME))
    await producer.tick()
    await settle(producer)
    await producer.tick()  # the next board carries the count worked out after the first
