"""Alerts end to end in one process: a producer refreshing real sources, the engine, Apprise to a loopback receiver."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from tests.support.alert_helpers import rule_set, settle, until
from tests.support.factories import BASE_TIME, ManualClock, StaticSource, usage
from tests.support.fake_nat import FakeNat
from usermetrics import services
from usermetrics.models import AlertRule, Delivery, Incident, Silence
from usermetrics.nat import NatHttpSource

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_rules")]


async def test_alerts_engine_source_404_fires_once_after_for_and_resolves_once(
    receiver, alerts_to, producer_with_alerts
):
    r = receiver()
    alerts_to(r.url)
    await sync_to_async(rule_set)("source-down", for_seconds=60, clear_seconds=0)
    nat = FakeNat(3).start()
    try:
        clock = ManualClock()
        producer = producer_with_alerts([NatHttpSource("nat-a", nat.url)], clock=clock)
        await producer.tick()
        await settle(producer)
        nat.status = 404  # per-user monitoring switched off: down at once
        for _ in range(3):  # 0 s, 30 s: pending
            await producer.tick()
            await settle(producer)
            clock.advance(30)
        assert [m["title"] for m in r.received] == ["[CRITICAL] source-down: nat-a is down"]
        assert r.received[0]["type"] == "failure"
        assert "switched off" not in r.received[0]["message"]  # names the source, not its error text
        for _ in range(5):  # still down: nothing more
            await producer.tick()
            await settle(producer)
            clock.advance(30)
        assert len(r.received) == 1
        board = services.board_get()
        assert board.meta["alerts_firing"] == 1 and board.meta["alerts_rule:source-down"] == 1
        nat.status = 200
        await producer.tick()
        await settle(producer)
        for _ in range(3):
            clock.advance(30)
            await producer.tick()
            await settle(producer)
        assert [m["title"] for m in r.received] == [
            "[CRITICAL] source-down: nat-a is down",
            "[RESOLVED] source-down: nat-a is down",
        ]
        assert r.received[1]["type"] == "success"
        assert services.board_get().meta["alerts_firing"] == 0
        incident = await Incident.objects.select_related("rule").aget()
        assert incident.rule.name == "source-down" and incident.closed_at is not None
        assert (
            incident.closed_at - incident.opened_at
        ).total_seconds() == 180  # fired at 60 s, answered again at 240 s
    finally:
        nat.stop()


def stuck_users(count: int) -> list:
    return [usage(f"user-{i:04d}", active=1, minutes_ago=60) for i in range(count)]


async def test_alerts_engine_1000_users_stuck_make_one_grouped_notification(receiver, alerts_to, producer_with_alerts):
    r = receiver()
    alerts_to(r.url, GROUP_NAMES=3)
    source = StaticSource("static", [usage("calm", minutes_ago=60)])
    producer = producer_with_alerts([source], clock=ManualClock(BASE_TIME), flags=True)
    await producer.tick()
    await settle(producer)
    source.users = [usage("calm", minutes_ago=60), *stuck_users(1000)]
    for _ in range(3):
        await producer.tick()
        await settle(producer)
    assert len(r.received) == 1
    note = r.received[0]
    assert note["title"] == "[WARNING] user-stuck: 1,000 users stuck"
    assert "user-0000, user-0001, user-0002 and 997 more." in note["message"]
    assert await Delivery.objects.filter(kind="firing", state="sent").acount() == 1
    assert services.board_get().meta["alerts_rule:user-stuck"] == 1000


async def test_alerts_engine_a_silence_suppresses_the_notification(receiver, alerts_to, producer_with_alerts):
    r = receiver()
    alerts_to(r.url)
    rule = await AlertRule.objects.aget(name="user-stuck")
    await Silence.objects.acreate(
        rule=rule, starts_at=BASE_TIME, ends_at=BASE_TIME.replace(year=2100), comment="maintenance"
    )
    source = StaticSource("static", stuck_users(1000))
    producer = producer_with_alerts([source], clock=ManualClock(BASE_TIME), flags=True)
    for _ in range(3):
        await producer.tick()
        await settle(producer)
    assert r.received == [] and r.requests == 0
    assert await Delivery.objects.acount() == 0
    meta = services.board_get().meta
    assert meta["alerts_firing"] == 0 and meta["alerts_silenced"] == 1  # still firing, shown as silenced
    # Lifted: the very next refresh notifies.
    await Silence.objects.all().adelete()
    await producer.tick()
    await settle(producer)
    assert [m["title"] for m in r.received] == ["[WARNING] user-stuck: 1,000 users stuck"]


async def test_alerts_engine_receiver_down_never_blocks_the_refresh_and_gets_it_later(
    receiver, alerts_to, producer_with_alerts
):
    r = receiver()
    r.mode = "hang"  # accepts the request and holds it: a receiver that does not answer
    alerts_to(r.url)
    await sync_to_async(rule_set)("source-down", for_seconds=0, clear_seconds=0)
    source = StaticSource("static", [usage("ada")])
    source.error = RuntimeError("boom")
    producer = producer_with_alerts([source], clock=ManualClock(BASE_TIME))
    await producer.tick()  # never answered: down at once, fires, queued
    await producer.alerts.flush()
    producer.alerts.courier.wake()  # the courier thread takes it and hangs on the receiver
    assert await asyncio.to_thread(r.holding.wait, 20)
    # The delivery is stuck inside Apprise, and the refresh loop goes on regardless.
    boards = [await producer.tick() for _ in range(5)]
    assert [b.seq for b in boards] == [2, 3, 4, 5, 6]
    assert r.holding.is_set() and r.received == []
    # The receiver fails the held request, then is down (refused) for a while, then is back.
    r.stop()
    r.mode = "ok"
    await asyncio.sleep(0.5)
    row = await Delivery.objects.aget()
    assert row.state == "pending" and row.attempts >= 1 and row.last_error
    r.start()
    got = await asyncio.to_thread(r.wait_for, 1)
    assert [m["title"] for m in got] == ["[CRITICAL] source-down: static is down"]
    await producer.tick()
    await until(lambda: Delivery.objects.get().state == "sent")
    assert len(r.received) == 1
    row = await Delivery.objects.aget()
    assert row.state == "sent" and row.attempts >= 2 and row.last_error == ""


async def test_alerts_engine_a_new_producer_neither_fires_again_nor_forgets_to_resolve(
    receiver, alerts_to, producer_with_alerts
):
    r = receiver()
    alerts_to(r.url)
    await sync_to_async(rule_set)("source-down", for_seconds=0, clear_seconds=0)
    source = StaticSource("static", [usage("ada")])
    source.error = RuntimeError("boom")
    first = producer_with_alerts([source], clock=ManualClock(BASE_TIME))
    await first.tick()
    await settle(first)
    await first.close()  # a restart, or a standby taking over
    second = producer_with_alerts([source], clock=ManualClock(BASE_TIME))
    for _ in range(3):
        await second.tick()
        await settle(second)
    assert [m["title"] for m in r.received] == ["[CRITICAL] source-down: static is down"]
    source.error = None
    await second.tick()
    await settle(second)
    assert [m["title"] for m in r.received][1:] == ["[RESOLVED] source-down: static is down"]
    assert await Incident.objects.filter(closed_at__isnull=True).acount() == 0
