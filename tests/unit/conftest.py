"""Fixtures of the in-process tests: the services they read (twelve users; a recorded history with flags), Redis
under a prefix of the test's own, an empty label cache, and the alerts' (seeded rules, a receiver, routes, a producer
with the engine)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.apps import apps as django_apps
from django.contrib.auth.models import Permission
from redis.asyncio import Redis

from tests.support.alert_receiver import Receiver
from tests.support.factories import CompanionSource, ManualClock, StaticSource, extras_of, sample_users
from tests.support.factories import usage as listed_usage
from tests.support.history_helpers import FixedSource, recorder, snapshot, usage
from usermetrics import identities, testing
from usermetrics.alerts.engine import AlertEngine
from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.monitor import MonitorService
from usermetrics.pricing import price_table_forget
from usermetrics.publish.assembly import redis_client
from usermetrics.publish.flag_tracker import FlagTracker
from usermetrics.publish.producer import Producer


@pytest.fixture
async def redis(settings) -> AsyncIterator[object]:
    """A client of the test Redis, and a prefix of this test's own (its keys are deleted after)."""
    prefix = f"{settings.USERMETRICS['REDIS_PREFIX']}-{uuid.uuid4().hex[:8]}"
    client = redis_client()
    client.test_prefix = prefix
    yield client
    async for key in client.scan_iter(match=f"{prefix}*"):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def fresh_label_cache() -> Iterator[None]:
    """The identities' label cache empty before and after the test (it outlives a flushed database)."""
    identities.identity_labels_forget()
    yield
    identities.identity_labels_forget()


@pytest.fixture(autouse=True)
def fresh_price_table() -> Iterator[None]:
    """The price table read again in every test (its cache outlives a flushed database and its price rows)."""
    price_table_forget()
    yield
    price_table_forget()


@pytest.fixture
async def source(install_service):
    """Twelve sample users in one source, on an emptied channel layer; no periodic refresh during the test."""
    await get_channel_layer().flush()
    src = StaticSource("static", sample_users())
    await install_service([src], interval=3600)
    return src


@pytest.fixture
async def recorded_flags(install_service):
    """alice busy, bob failing half his requests, dave stuck, carol ended a minute ago; all recorded."""
    now = utcnow()
    before = [
        usage("alice", last=now - timedelta(minutes=3)),
        usage("bob", last=now - timedelta(minutes=3)),
        usage("carol", total=3, errors=1, avg=20.0, last=now - timedelta(minutes=3)),
        usage("dave", ref=1, total=1, last=now - timedelta(minutes=10)),
    ]
    after = [
        usage("alice", total=60, avg=100.0, last=now),
        usage("bob", total=10, errors=5, avg=50.0, last=now),
        usage("dave", ref=1, total=1, last=now - timedelta(minutes=10)),
    ]
    rec = recorder()
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=3), before))
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=1), after))  # carol ended
    await install_service([FixedSource("demo", after)], interval=3600, flags=True)
    return after


@pytest.fixture
def seeded_rules(transactional_db) -> None:
    """The alert rules a new database starts with, written as its migration does.

    Transactional tests start from whatever the test before them left (a flushed database, or the
    migrated one); ``serialized_rollback`` reloaded a copy of the migrated database instead, and
    failed on duplicate content types after a non-transactional test.
    """
    import_module("usermetrics.migrations.0004_alerts").rules_seed(django_apps, None)
    import_module("usermetrics.migrations.0006_companion_extras").rules_seed(django_apps, None)
    import_module("usermetrics.migrations.0009_history_tokens").rules_seed(django_apps, None)


@pytest.fixture
def receiver() -> Iterator[Callable[[], Receiver]]:
    """``receiver()``: a loopback Apprise receiver, started; every one made is stopped after the test."""
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


WORKERS = [
    {
        "host": "nat-1", "pid": 101, "started_at": "2026-01-01T11:00:00+00:00", "nat_version": "1.9.0",
        "config": "per_user_echo", "label": "nat-1:101", "state": "ok", "users": 2, "reports": 40,
        "interval": 2.0, "dropped": 3, "gaps": 1, "silent_s": 1.5,
    },
    {
        "host": "nat-1", "pid": 99, "started_at": "2026-01-01T10:00:00+00:00", "nat_version": "1.9.0",
        "config": "per_user_echo", "label": "nat-1:99", "state": "ended", "users": 0, "reports": 7,
        "interval": 2.0, "dropped": 0, "gaps": 0, "silent_s": 61.0,
    },
]  # fmt: skip


@pytest.fixture
async def companion(install_service):
    """Two companion users (ada: slow, 2 queued on 2 workers; bob: fast) and one of a plain NAT source (cy)."""
    extras = {
        "ada": extras_of(
            [50.0] * 90 + [900.0] * 10, queued=2, max_concurrency=16, wait_ms=300.0, run_ms=900.0,
            workers=("nat-1:101", "nat-1:102"),
        ),
        "bob": extras_of([3.0] * 10, max_concurrency=8, run_ms=30.0, workers=("nat-1:101",)),
    }  # fmt: skip
    stream = CompanionSource(
        "nat", [listed_usage("ada", requests=100), listed_usage("bob", requests=10)], extras, WORKERS, {"garbage": 2}
    )
    plain = StaticSource("plain", [listed_usage("cy", requests=5)])
    await install_service([stream, plain], interval=3600)


ODD_ID = "odd/ <b>\x00 ~id"  # a slash, HTML, a NUL and a tilde: NAT allows any string
LONG_ID = "l" * 1100  # longer than any command may name
ACTING_WORKERS = [
    {**WORKERS[0], "label": "nat-1:101", "pid": 101},
    {**WORKERS[0], "label": "nat-1:102", "pid": 102},
    WORKERS[1],  # ended: no answer is waited for from it
]


@pytest.fixture
async def acting(install_service, settings) -> AsyncIterator[str]:
    """A companion stream "nat" (users ada, bob, dee, eve with three requests queued and none counted in flight,
    ``ODD_ID`` and ``LONG_ID``; workers nat-1:101 and nat-1:102 running, nat-1:99 ended)
    whose commands go to a Redis stream of the test's own, and a plain source "plain" (cy, and dee with two
    requests in flight: idle where commands go, busy elsewhere); the stream's key.

    Actions wait half a second for the answers; the test starts the workers that answer
    (``tests.support.fake_workers``). Its keys are deleted after.
    """
    prefix = f"{settings.USERMETRICS['REDIS_PREFIX']}-act-{uuid.uuid4().hex[:8]}"
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    entry = {"NAME": "nat", "URL": url, "STREAM": f"{prefix}:nat"}
    settings.USERMETRICS = {**settings.USERMETRICS, "SOURCES": [entry], "ACTIONS_TIMEOUT": 0.5}
    users = [listed_usage(u) for u in ("bob", "dee", "eve", ODD_ID, LONG_ID)]
    queued = {"eve": extras_of(queued=3, max_concurrency=8)}  # streamed answers waiting after their sessions ended
    stream = CompanionSource("nat", [listed_usage("ada", requests=3), *users], queued, ACTING_WORKERS)
    plain = StaticSource("plain", [listed_usage("cy"), listed_usage("dee", active=2)])
    await install_service([stream, plain], interval=3600)
    yield entry["STREAM"]
    client = Redis.from_url(url)
    async for key in client.scan_iter(match=f"{prefix}*"):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def acting_staff(staff_user) -> Any:
    """The staff user, granted the permission to act on users."""
    staff_user.user_permissions.add(Permission.objects.get(codename="act_on_users"))
    return staff_user


# Two models with calls for ada, one for bob (all of them cached and reasoning within prompt and completion).
LLM_ADA = (("gpt-priced", (3, 3000, 600, 1000, 200, 3600)), ("gpt-unpriced", (2, 500, 100, 0, 0, 600)))
LLM_BOB = (("gpt-priced", (1, 1_000_000, 2_000_000, 0, 0, 3_000_000)),)
# gpt-priced at 2 (prompt), 8 (completion), 0.5 (cached) per million; gpt-unpriced has no price.
PRICED = {"CURRENCY": "EUR", "PRICES": {"gpt-priced": {"prompt": 2, "completion": 8, "cached": 0.5}}}


@pytest.fixture
async def llm_companion(install_service, settings):
    """A companion stream whose users made LLM calls (ada: a priced and an unpriced model; bob: the priced one,
    with 2 tool calls; cy: none yet) and one of a plain NAT source (dan); ``PRICED`` in force."""
    settings.USERMETRICS = {**getattr(settings, "USERMETRICS", {}), **PRICED}
    extras = {
        "ada": extras_of([50.0] * 4, llm=LLM_ADA, tool_calls=5),
        "bob": extras_of([3.0], llm=LLM_BOB, tool_calls=2),
        "cy": extras_of([3.0]),
    }
    users = [listed_usage(uid, requests=4) for uid in extras]
    stream = CompanionSource("nat", users, extras, WORKERS, {})
    await install_service([stream, StaticSource("plain", [listed_usage("dan", requests=1)])], interval=3600)
