"""Testing hooks (sync), as ``channels.testing`` has: faces and producers in one process, driven by the test.

A test installs a face on a local bus with no follower task (``face_install(face_local())``) and
a producer that hands its frames straight to that face (``producer_local``); the test then runs
each refresh itself (``await producer.tick()``).
"""

from __future__ import annotations

from typing import Any

from usermetrics.conf import get_config
from usermetrics.feed.subscriptions import SubscriptionRegistry
from usermetrics.publish import face as faces
from usermetrics.publish.assembly import ONE_FACE, monitor_build, producer_build
from usermetrics.publish.bus import LocalBus
from usermetrics.publish.face import Face
from usermetrics.publish.follower import Follower
from usermetrics.publish.lease import LocalLease
from usermetrics.publish.producer import Producer


def face_install(face: Face | None) -> Face | None:
    """Make ``face`` the process's face (None: rebuilt from the settings next time); returns the previous one."""
    previous, faces._face = faces._face, face
    return previous


def face_local(bus: LocalBus | None = None) -> Face:
    """A face on a local bus, with no follower task (the test drives the producer itself)."""
    cfg = get_config()
    bus = bus or LocalBus()
    registry = SubscriptionRegistry()
    follower = Follower(
        bus=bus, registry=registry, face=ONE_FACE, interval=cfg.refresh_interval, stale_after=cfg.producer_timeout
    )
    return Face(name=ONE_FACE, bus=bus, registry=registry, follower=follower, autostart=False)


def producer_local(face: Face, **monitor_kwargs: Any) -> Producer:
    """A producer on ``face``'s local bus, handing frames to ``face``'s sockets (one process, nothing recorded)."""

    async def send(_face: str, message: dict[str, object]) -> None:
        face.follower.deliver(message)

    assert isinstance(face.bus, LocalBus)
    monitor = monitor_kwargs.pop("monitor", None) or monitor_build()
    return producer_build(
        monitor=monitor,
        bus=face.bus,
        lease=LocalLease(),
        subscriptions=face.registry,
        send=send,
        record=False,
        alert=False,
        name="local",
    )
