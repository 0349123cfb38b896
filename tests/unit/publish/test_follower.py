"""Fan-out: the producer sends each face one message per refresh, the face hands each frame to its sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.support.factories import ScriptedSource, record
from usermetrics.consumers import UserListConsumer
from usermetrics.feed.builder import FRAMES_TYPE
from usermetrics.feed.subscriptions import Subscription, SubscriptionRegistry
from usermetrics.monitor import MonitorService
from usermetrics.publish.bus import LocalBus
from usermetrics.publish.follower import Follower
from usermetrics.publish.lease import LocalLease
from usermetrics.publish.producer import Producer
from usermetrics.selection import ViewSpec

FIRST, SORTED, ONE = (
    Subscription(spec=ViewSpec()),
    Subscription(spec=ViewSpec(sort="user_id")),
    Subscription(user_id="a"),
)


class Socket:
    """A receiver that keeps what the face hands it."""

    def __init__(self) -> None:
        """Nothing received yet."""
        self.frames: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []

    async def metrics_update(self, event: dict[str, Any]) -> None:
        """Keep a frame."""
        self.frames.append(event)

    async def metrics_status(self, event: dict[str, Any]) -> None:
        """Keep a status message."""
        self.statuses.append(event)


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


async def test_publish_fanout_one_message_per_face_per_refresh_each_view_built_once():
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


async def test_publish_fanout_no_view_watched_sends_nothing():
    sent: list[tuple[str, dict[str, Any]]] = []
    producer = _producer({"face-1": {}}, sent)
    await producer.tick()
    assert sent == [] and producer.frames.frames_built == 0


async def test_publish_fanout_the_face_hands_each_frame_to_the_sockets_on_its_view():
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


async def test_publish_fanout_a_socket_drops_frames_of_a_view_it_left_and_refreshes_it_has():
    consumer = UserListConsumer()
    sent: list[dict[str, Any]] = []

    async def base_send(message: dict[str, Any]) -> None:
        sent.append(message)

    consumer.base_send = base_send
    consumer.access_task = asyncio.get_running_loop().create_future()  # this refresh's re-check is running
    consumer.group = "new"
    await consumer.metrics_update({"text": "old view", "seq": 9, "producer": "p", "group": "old"})
    await consumer.metrics_update({"text": "new view", "seq": 9, "producer": "p", "group": "new"})
    await consumer.metrics_update({"text": "again", "seq": 9, "producer": "p", "group": "new"})
    assert [m["text"] for m in sent] == ["new view"]
    consumer.access_task.cancel()


async def test_publish_fanout_a_receive_that_fails_does_not_end_the_faces_frames():
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
