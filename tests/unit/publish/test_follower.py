"""The follower, a face's side: it hands each frame to the sockets on its view, fetches boards, sees a producer go."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels.layers import channel_layers

from tests.support.faces import FIRST, ONE, SORTED, Socket
from tests.support.factories import board_of, sample_users
from usermetrics.feed.builder import FRAMES_TYPE
from usermetrics.feed.subscriptions import Subscription, SubscriptionDirectory, SubscriptionRegistry, face_channel
from usermetrics.publish.assembly import layer_sender
from usermetrics.publish.bus import LocalBus, RedisBus
from usermetrics.publish.follower import Follower
from usermetrics.selection import ViewSpec


async def test_publish_follower_the_face_hands_each_frame_to_the_sockets_on_its_view():
    registry = SubscriptionRegistry()
    follower = Follower(bus=LocalBus(), registry=registry, face="f", interval=1, stale_after=3)
    one, two, other, counted = Socket(), Socket(), Socket(), Socket()
    registry.subscribe("c1", FIRST, one)
    registry.subscribe("c2", FIRST, two)
    registry.subscribe("c3", ONE, other)
    registry.subscribe("c4", SORTED)  # registered without a receiver: counted, not fed
    message = {"type": FRAMES_TYPE, "seq": 5, "producer": "p", "frames": {FIRST.group: "F", SORTED.group: "S"}}
    follower.deliver(message)
    await asyncio.sleep(0)  # each socket gets its frame in a task of its own
    await asyncio.sleep(0)
    assert [(e["text"], e["seq"], e["group"]) for e in one.frames] == [("F", 5, FIRST.group)]
    assert [e["text"] for e in two.frames] == ["F"] and other.frames == [] and counted.frames == []
    assert follower.delivered == 2
    registry.unsubscribe("c2")
    await follower.broadcast({"type": "metrics.status", "text": "gone"})
    await asyncio.sleep(0)
    assert [e["text"] for e in one.statuses + other.statuses] == ["gone", "gone"] and two.statuses == []


async def test_publish_follower_a_receive_that_fails_does_not_end_the_faces_frames():
    registry = SubscriptionRegistry()
    socket = Socket()
    registry.subscribe("c1", FIRST, socket)
    answers: list[object] = [ValueError("unreadable"), OSError("redis gone"), "not a message"]
    stop = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if answers:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer  # type: ignore[return-value]
        stop.set()
        return {"type": FRAMES_TYPE, "seq": 1, "producer": "p", "frames": {FIRST.group: "F"}}

    follower = Follower(bus=LocalBus(), registry=registry, face="f", interval=1, stale_after=3, receive=receive)
    await asyncio.wait_for(follower.take_frames(stop), timeout=30)
    await asyncio.sleep(0)
    assert [e["text"] for e in socket.frames] == ["F"]


@pytest.mark.redis
async def test_publish_follower_fetches_new_boards_and_notices_the_producer_gone(redis):
    bus = RedisBus(redis, prefix=redis.test_prefix)
    told: list[str] = []

    async def notify(event: dict[str, object]) -> None:
        told.append(str(event["text"]))

    follower = Follower(
        bus=bus, registry=SubscriptionRegistry(), face="f", interval=0.1, stale_after=0.3, notify=notify
    )
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        await follower.first_board(within=1)
        assert follower.latest() is None and not follower.state().publishing
        await bus.publish(board_of(sample_users(), seq=1))
        for _ in range(50):
            if follower.latest() is not None:
                break
            await asyncio.sleep(0.05)
        assert follower.latest().seq == 1 and follower.state().publishing
        for _ in range(50):  # no new board for longer than stale_after: the sockets are told once
            if any('"state":"absent"' in t for t in told[1:]):
                break
            await asyncio.sleep(0.05)
        assert not follower.state().publishing and '"state":"absent"' in told[-1]
    finally:
        stop.set()
        await task


@pytest.mark.redis
async def test_publish_frames_reach_a_face_through_its_channel_on_redis(redis, settings):
    layer = channel_layers.make_backend("default")
    received: list[dict[str, object]] = []
    arrived = asyncio.Event()
    registry = SubscriptionRegistry()
    view = Subscription(spec=ViewSpec())

    class Socket:
        async def metrics_update(self, event: dict[str, object]) -> None:
            received.append(event)
            arrived.set()

        async def metrics_status(self, event: dict[str, object]) -> None:
            pass

    registry.subscribe("c1", view, Socket())
    face = f"face-{uuid.uuid4().hex[:8]}"
    follower = Follower(
        bus=RedisBus(redis, prefix=redis.test_prefix),
        registry=registry,
        face=face,
        interval=0.2,
        stale_after=1,
        receive=lambda: layer.receive(face_channel(face)),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(follower.take_frames(stop))
    try:
        await layer_sender(layer)(
            face, {"type": "metrics.frames", "seq": 3, "producer": "p", "frames": {view.group: "T"}}
        )
        await asyncio.wait_for(arrived.wait(), timeout=10)
        assert [(e["text"], e["seq"], e["group"]) for e in received] == [("T", 3, view.group)]
    finally:
        stop.set()
        task.cancel()
        await layer.flush()


@pytest.mark.redis
async def test_publish_follower_announces_a_new_view_at_once_and_a_renewal_keeps_it(redis):
    directory = SubscriptionDirectory(redis, prefix=redis.test_prefix)
    registry = SubscriptionRegistry()
    follower = Follower(
        bus=LocalBus(), registry=registry, face="face-1", interval=3600, stale_after=3600, directory=directory
    )
    first, user = Subscription(spec=ViewSpec()), Subscription(user_id="a/b")
    registry.subscribe("c1", first)
    await follower.advertiser.advertise()
    registry.subscribe("c2", user)
    await follower.advertiser.announce()  # no renewal needed: the producer's next read has it
    assert set((await directory.collect_faces())["face-1"]) == {first.group, user.group}
    await redis.delete(f"{redis.test_prefix}:subscriptions:face-1")
    await follower.advertiser.announce()  # told already: nothing more to say until the renewal
    assert await directory.collect_faces() == {}
    registry.unsubscribe("c1")
    await follower.advertiser.advertise()  # the renewal says the whole of it again, without the view nobody holds
    assert set((await directory.collect_faces())["face-1"]) == {user.group}


async def test_publish_follower_a_new_board_goes_to_new_subscribers_the_producer_has_not_fed():
    registry = SubscriptionRegistry()
    follower = Follower(bus=LocalBus(), registry=registry, face="f", interval=1, stale_after=3)
    fed, unfed, old = Socket(), Socket(), Socket()
    registry.subscribe("c0", SORTED, old)
    for channel, socket in (("c1", fed), ("c2", unfed)):
        registry.subscribe(channel, FIRST if socket is fed else ONE, socket)
        await follower.advertiser.announce(socket)
    follower.deliver({"type": FRAMES_TYPE, "seq": 5, "producer": "p", "frames": {FIRST.group: "F"}})
    follower.board_arrived(board_of(sample_users(), seq=5))
    follower.board_arrived(board_of(sample_users(), seq=6))  # each is told once
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert [(e["type"], e["seq"]) for e in unfed.catch_ups] == [("metrics.catch_up", 5)]
    assert fed.catch_ups == [] and old.catch_ups == []  # fed by the producer, or never new


@pytest.mark.redis
async def test_publish_follower_hands_a_refreshs_frames_out_before_taking_its_board_in(redis):
    order: list[str] = []

    class Bus(RedisBus):
        async def fetch(self) -> bytes | None:
            order.append("board")
            return await super().fetch()

    class Watching(Socket):
        async def metrics_update(self, event: dict[str, Any]) -> None:
            order.append("frame")

    bus = Bus(redis, prefix=redis.test_prefix)
    registry = SubscriptionRegistry()
    registry.subscribe("c1", FIRST, Watching())
    follower = Follower(bus=bus, registry=registry, face="f", interval=1, stale_after=3)
    await bus.publish(board_of(sample_users(), seq=2))
    syncing = asyncio.create_task(follower.sync())
    await asyncio.sleep(0.1)  # the follower saw the board on the bus; the frames are on their way
    follower.deliver({"type": FRAMES_TYPE, "seq": 2, "producer": "p", "frames": {FIRST.group: "F"}})
    await asyncio.wait_for(syncing, timeout=30)
    assert order == ["frame", "board"] and follower.latest().seq == 2
