"""The Redis side of producer and faces, against the Redis of REDIS_URL: lease, bus, views, follower."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from channels.layers import channel_layers

from tests.support.factories import ScriptedSource, board_of, record, sample_users
from usermetrics.board import Board
from usermetrics.feed.subscriptions import Subscription, SubscriptionDirectory, SubscriptionRegistry, face_channel
from usermetrics.monitor import MonitorService
from usermetrics.publish.assembly import layer_sender, redis_client
from usermetrics.publish.bus import RedisBus
from usermetrics.publish.follower import Follower
from usermetrics.publish.lease import RedisLease
from usermetrics.publish.producer import Producer
from usermetrics.selection import ViewSpec

pytestmark = pytest.mark.redis


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


async def test_publish_lease_one_leads_and_a_standby_takes_over_when_it_expires(redis):
    key = f"{redis.test_prefix}:leader"
    first = RedisLease(redis, holder="first", ttl=0.4, key=key)
    second = RedisLease(redis, holder="second", ttl=0.4, key=key)
    assert await first.hold() and not await second.hold()
    assert await first.hold()  # the holder renews
    assert await first.leader() == "first"
    # The leader dies without a word: its lease runs out and the standby takes it.
    first.leading = False  # (a killed process renews nothing)
    await asyncio.sleep(0.5)
    assert await second.hold() and await second.leader() == "second"
    assert not await first.hold()  # the old leader, back, does not take it over
    await second.release()
    assert await second.leader() is None  # a clean stop frees it at once


async def test_publish_lease_release_never_deletes_another_holders_lease(redis):
    key = f"{redis.test_prefix}:leader"
    mine = RedisLease(redis, holder="mine", ttl=5, key=key)
    assert await mine.hold()
    await redis.set(key, "someone-else")  # the lease moved on meanwhile
    await mine.release()
    assert await redis.get(key) == b"someone-else"
    assert not await mine.hold()  # renewing compares the holder first


async def test_publish_bus_round_trips_a_board(redis):
    bus = RedisBus(redis, prefix=redis.test_prefix)
    assert await bus.last_published() is None
    board = board_of(sample_users(), seq=4, flags={"u02": ["stuck"]})
    await bus.publish(board)
    published = await bus.last_published()
    assert (published.producer, published.seq) == ("p", 4)
    back = Board.decode(await bus.fetch())
    assert back.body == board.body and back.etag == board.etag and back.flags_at(2) == ["stuck"]
    assert back.user("u05") == board.user("u05") and back.totals == board.totals


async def _every_view(directory: SubscriptionDirectory) -> dict[str, Subscription]:
    """Every view any live face watches, by group (what the producer builds frames for)."""
    return {group: view for views in (await directory.collect_faces()).values() for group, view in views.items()}


async def test_publish_directory_gathers_every_faces_views(redis):
    directory = SubscriptionDirectory(redis, prefix=redis.test_prefix)
    one, two = SubscriptionRegistry(), SubscriptionRegistry()
    one.subscribe("c1", Subscription(spec=ViewSpec()))
    two.subscribe("c2", Subscription(spec=ViewSpec()))
    two.subscribe("c3", Subscription(user_id="a/b"))
    await directory.advertise("face-1", one.subscriptions(), ttl=5)
    await directory.advertise("face-2", two.subscriptions(), ttl=5)
    views = await _every_view(directory)
    assert set(views) == set(one.subscriptions()) | set(two.subscriptions()) and len(views) == 2
    await directory.advertise("face-2", {}, ttl=5)  # its sockets closed
    assert set(await _every_view(directory)) == set(one.subscriptions())
    await directory.advertise("face-1", one.subscriptions(), ttl=0.2)
    await asyncio.sleep(0.4)  # a face that stops renewing is forgotten
    assert await _every_view(directory) == {}


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


async def test_publish_directory_says_which_face_watches_what(redis):
    directory = SubscriptionDirectory(redis, prefix=redis.test_prefix)
    first, user = Subscription(spec=ViewSpec()), Subscription(user_id="a/b")
    await directory.advertise("face-1", {first.group: first}, ttl=5)
    await directory.advertise("face-2", {first.group: first, user.group: user}, ttl=5)
    faces = await directory.collect_faces()
    assert {face: set(views) for face, views in faces.items()} == {
        "face-1": {first.group},
        "face-2": {first.group, user.group},
    }
    await directory.advertise("face-1", {}, ttl=5)
    assert set(await directory.collect_faces()) == {"face-2"}


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
