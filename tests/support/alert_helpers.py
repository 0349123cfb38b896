"""Alert test helpers (sync and async): a rule changed, the outbox settled, a secret route, a source-down that fires."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async

from tests.support.factories import BASE_TIME, ManualClock, StaticSource, usage
from usermetrics.alerts.rules import Reading
from usermetrics.models import AlertRule, Delivery
from usermetrics.publish.producer import Producer
from usermetrics.snapshot import Totals

NO_TOTALS = Totals(users=0, active=0, in_flight=0, requests=0, errors=0, avg_latency_ms=0.0, exit_stack=0)


def reading_at(at: float, **fields: Any) -> Reading:
    """One refresh ``at`` seconds after ``BASE_TIME`` for the rules: no source, user or flag but ``fields``."""
    return Reading(
        **{"sources": [], "totals": NO_TOTALS, "flags": {}, "origins": {}, **fields},
        now=BASE_TIME + timedelta(seconds=at),
    )


def notice_kinds(step: Any) -> list[tuple[str, list[str]]]:
    """Each notice of a ``Book.step`` as (kind, its subjects)."""
    return [(n.kind, [s for s, _ in n.subjects]) for n in step.notices]


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
