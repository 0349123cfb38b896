"""The first refresh after a socket subscribes reaches it: a new view is advertised to the producer at once.

Each test subscribes (connects, or changes its view) right before the producer's next refresh, and
drives that refresh itself: in one process (the producer reads the face's registry) and through
Redis (the face tells the directory before the socket's first frame, not at the follower's next wake-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from channels.layers import channel_layers

from tests.support.factories import StaticSource, sample_users
from tests.support.producers import current_producer
from tests.unit.test_consumers import communicator, receive_frame, staff_cookie, subscribe
from usermetrics import testing
from usermetrics.feed.subscriptions import SubscriptionDirectory, SubscriptionRegistry, face_channel
from usermetrics.monitor import MonitorService
from usermetrics.publish.assembly import layer_sender, producer_build
from usermetrics.publish.bus import RedisBus
from usermetrics.publish.face import Face, face_get
from usermetrics.publish.follower import Follower
from usermetrics.publish.lease import LocalLease
from usermetrics.publish.producer import Producer

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["staff_cookie"]  # the fixture, shared with the consumers' other tests

# The follower's own renewal comes every half interval: an hour apart, it never helps within a test.
NEVER = 7200.0


async def _face_has(seq: int) -> None:
    """Wait until this process's face has the board of refresh ``seq`` (through Redis it fetches it)."""
    for _ in range(200):
        board = face_get().follower.latest()
        if board is not None and board.seq >= seq:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the face never got board {seq}")


async def _the_refresh_after_subscribing_reaches_the_socket(producer: Producer, cookie: bytes) -> None:
    """Connect, then refresh; change the view, then refresh: each refresh's frame reaches the socket."""
    comm = communicator("/ws/monitor/?page_size=5", cookie)
    assert (await comm.connect(timeout=5))[0]
    try:
        _, first = await receive_frame(comm)
        await producer.tick()
        _, doc = await receive_frame(comm)
        assert (doc["seq"], doc["view"]["page_size"]) == (first["seq"] + 1, 5)
        await _face_has(doc["seq"])  # so that the next view's first frame is of this refresh

        _, moved = await subscribe(comm, sort="user_id", page_size=3)  # a view no socket held before
        assert (moved["seq"], moved["view"]["sort"]) == (doc["seq"], "user_id")
        await producer.tick()
        parsed, doc = await receive_frame(comm)
        assert (doc["seq"], doc["view"]["sort"]) == (moved["seq"] + 1, "user_id")
        assert [u.user_id for u in parsed.users] == ["u00", "u01", "u02"]
        assert await comm.receive_nothing(timeout=0.2)
    finally:
        await comm.disconnect()


async def test_feed_first_refresh_after_subscribing_reaches_the_socket_in_one_process(source, staff_cookie):
    await _the_refresh_after_subscribing_reaches_the_socket(current_producer(), staff_cookie)


@pytest.fixture
async def redis_face(redis) -> AsyncIterator[tuple[Face, Producer]]:
    """A face following Redis (its follower running) and a producer publishing there; the test runs each refresh."""
    layer = channel_layers.make_backend("default")
    name = f"face-{uuid.uuid4().hex[:8]}"
    bus = RedisBus(redis, prefix=redis.test_prefix)
    directory = SubscriptionDirectory(redis, prefix=redis.test_prefix)
    registry = SubscriptionRegistry()
    follower = Follower(
        bus=bus,
        registry=registry,
        face=name,
        interval=NEVER,
        stale_after=NEVER,
        directory=directory,
        receive=lambda: layer.receive(face_channel(name)),
    )
    face = Face(name=name, bus=bus, registry=registry, follower=follower, autostart=False)
    producer = producer_build(
        monitor=MonitorService([StaticSource("static", sample_users())], interval=NEVER),
        bus=bus,
        lease=LocalLease(),
        subscriptions=directory,
        send=layer_sender(layer),
        record=False,
        alert=False,
    )
    producer.flag_tracker = None  # flags read the history: not this test's subject
    previous = testing.face_install(face)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        await producer.tick()
        for _ in range(200):  # the follower fetches the first board (woken by the producer's message)
            if follower.latest() is not None:
                break
            await asyncio.sleep(0.05)
        assert follower.latest() is not None
        yield face, producer
    finally:
        stop.set()
        task.cancel()  # it waits for the producer's next message (half an interval) before it looks at stop
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.close()
        testing.face_install(previous)
        await layer.flush()


@pytest.mark.redis
async def test_feed_first_refresh_after_subscribing_reaches_the_socket_through_redis(redis_face, staff_cookie):
    _, producer = redis_face
    await _the_refresh_after_subscribing_reaches_the_socket(producer, staff_cookie)


async def test_feed_a_new_subscriber_the_producer_left_out_gets_the_board_from_its_face(source, staff_cookie):
    producer = current_producer()
    face = face_get()
    comm = communicator("/ws/monitor/?page_size=4", staff_cookie)
    assert (await comm.connect(timeout=5))[0]
    try:
        _, first = await receive_frame(comm)
        held = producer.subscriptions

        async def nothing_yet() -> dict[str, dict[str, object]]:
            return {}  # the producer read the subscriptions just before this socket's were told

        producer.subscriptions = nothing_yet
        board = await producer.tick()
        producer.subscriptions = held
        assert await comm.receive_nothing(timeout=0.2)  # the producer sent it nothing of that refresh
        face.follower.board_arrived(board)  # the face has that board: the socket takes its frame from there
        _, doc = await receive_frame(comm)
        assert (doc["seq"], doc["view"]["page_size"]) == (first["seq"] + 1, 4)
        face.follower.board_arrived(board)  # fresh no more: told once
        await producer.tick()  # and the producer's frames follow
        _, doc = await receive_frame(comm)
        assert doc["seq"] == first["seq"] + 2
        assert await comm.receive_nothing(timeout=0.2)
    finally:
        await comm.disconnect()
