"""Alert test helpers: a loopback receiver fixture, the ALERTS settings, a producer with the engine, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from tests.alert_receiver import Receiver
from tests.factories import ManualClock
from usermetrics import services
from usermetrics.alerts.engine import AlertEngine
from usermetrics.conf import get_config
from usermetrics.models import AlertRule, Delivery
from usermetrics.monitor import MonitorService
from usermetrics.publish.producer import FlagTracker, Producer


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
    previous = services.face_install(None)

    def make(sources: list, *, clock: ManualClock | None = None, flags: bool = False) -> Producer:
        face = services.face_local()
        services.face_install(face)
        monitor = MonitorService(sources, interval=3600, clock=clock or ManualClock())
        producer = services.producer_local(face, monitor=monitor)
        producer.flag_tracker = FlagTracker() if flags else None
        producer.alerts = AlertEngine(get_config().alerts)
        made.append(producer)
        return producer

    yield make
    for producer in made:
        await producer.close()
    services.face_install(previous)


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
