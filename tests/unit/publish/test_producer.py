"""The producer: one message per face per refresh, a standby that waits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.faces import FIRST, ONE, SORTED
from tests.support.factories import ScriptedSource, record
from usermetrics.feed.builder import FRAMES_TYPE
from usermetrics.feed.subscriptions import Subscription
from usermetrics.monitor import MonitorService
from usermetrics.publish.bus import LocalBus, RedisBus
from usermetrics.publish.lease import LocalLease, RedisLease
from usermetrics.publish.producer import Producer


def _producer(faces: dict[str, dict[str, Subscription]], sent: list[tuple[str, dict[str, Any]]]) -> Producer:
    async def by_face() -> dict[str, dict[str, Subscription]]:
        return faces

    async def send(face: str, message: dict[str, Any]) -> None:
        sent.append((face, message))

    async def labels() -> dict[str, str]:
        return {}

    source = ScriptedSource("s", [record("a"), record("b")])
    return Producer(
        MonitorService([source]),
        bus=LocalBus(),
        lease=LocalLease(),
        subscriptions=by_face,
        send=send,
        labels=labels,
        name="p",
    )


async def test_publish_producer_one_message_per_face_per_refresh_each_view_built_once():
    faces = {"face-1": {FIRST.group: FIRST}, "face-2": {FIRST.group: FIRST, SORTED.group: SORTED, ONE.group: ONE}}
    sent: list[tuple[str, dict[str, Any]]] = []
    producer = _producer(faces, sent)
    await producer.tick()
    await producer.tick()
    assert [face for face, _ in sent] == ["face-1", "face-2", "face-1", "face-2"]  # one per face per refresh
    assert producer.frames.frames_built == 6  # three distinct views, twice: a view two faces watch is built once
    _, message = sent[3]
    assert message["type"] == FRAMES_TYPE and (message["seq"], message["producer"]) == (2, "p")
    assert set(message["frames"]) == {FIRST.group, SORTED.group, ONE.group}
    assert sent[2][1]["frames"][FIRST.group] == message["frames"][FIRST.group]  # the same text for both faces
    assert json.loads(message["frames"][ONE.group])["users"][0]["user_id"] == "a"


async def test_publish_producer_no_view_watched_sends_nothing():
    sent: list[tuple[str, dict[str, Any]]] = []
    producer = _producer({"face-1": {}}, sent)
    await producer.tick()
    assert sent == [] and producer.frames.frames_built == 0


@pytest.mark.redis
async def test_publish_producer_standby_publishes_nothing_and_a_taker_continues_the_numbering(redis):
    sent: list[tuple[str, dict[str, object]]] = []

    async def send(group: str, event: dict[str, object]) -> None:
        sent.append((group, event))

    async def no_subscriptions() -> dict[str, Subscription]:
        return {}

    async def no_labels() -> dict[str, str]:
        return {}

    def producer(name: str) -> Producer:
        return Producer(
            MonitorService([ScriptedSource("s", [record("a")])]),
            bus=RedisBus(redis, prefix=redis.test_prefix),
            lease=RedisLease(redis, holder=name, ttl=5, key=f"{redis.test_prefix}:leader"),
            subscriptions=no_subscriptions,
            send=send,
            labels=no_labels,
            name=name,
        )

    leader, standby = producer("leader"), producer("standby")
    assert (await leader.tick()).seq == 1 and (await leader.tick()).seq == 2
    assert await standby.tick() is None and standby.monitor.refresh_count == 0  # never reads a source
    await leader.close()  # releases the lease
    taken = await standby.tick()
    assert taken is not None and taken.seq == 3 and taken.producer == "standby"
    await standby.close()


class _LeaseSlowToLetGo(LocalLease):
    """A lease whose keeper takes a step of the loop to stop (as a Redis command cut short closes its connection)."""

    def __init__(self) -> None:
        self.letting_go = asyncio.Event()

    async def keep(self, *, longest: float) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.letting_go.set()
            await asyncio.Event().wait()  # cancelled again only by whoever cancels the producer
            raise


async def test_publish_producer_cancelled_while_its_keeper_stops_is_cancelled_and_publishes_nothing():
    # Cancelling the producer (shutting down) while it waits for its lease keeper to stop must
    # cancel it: a refresh that goes on to publish, and a run loop that never ends, are not a stop.
    sent: list[tuple[str, dict[str, Any]]] = []
    producer = _producer({"face-1": {FIRST.group: FIRST}}, sent)
    lease = producer.lease = _LeaseSlowToLetGo()
    tick = asyncio.create_task(producer.tick())
    await lease.letting_go.wait()  # the refresh is done; the producer now waits for its keeper
    tick.cancel()
    with pytest.raises(asyncio.CancelledError):
        await tick
    assert producer.published == 0 and sent == []
