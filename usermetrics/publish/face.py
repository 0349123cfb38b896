"""This process's face (async): the bus it follows, its sockets' subscriptions, the follower, an embedded producer.

Faces never read a source: they serve what the producer published. ``face_get()`` is the
process's one face, built from the settings on first use; ``faces_start()`` starts its follower
on the serving loop and, with ``USERMETRICS_PRODUCER=embedded``, the producer as a child process
(``child.ChildProducer``). ``usermetrics.testing`` installs faces of its own for tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer

from usermetrics.conf import get_config
from usermetrics.feed.subscriptions import SubscriptionDirectory, SubscriptionRegistry, face_channel

from .assembly import process_name, redis_client
from .bus import LocalBus, RedisBus
from .child import ChildProducer, child_command
from .follower import Follower

FIRST_BOARD_WAIT = 5.0  # seconds a starting face waits for its first board


@dataclass
class Face:
    """This process's side of the bus: what it follows, its sockets' subscriptions, the follower."""

    name: str
    bus: LocalBus | RedisBus
    registry: SubscriptionRegistry
    follower: Follower
    embedded: ChildProducer | None = None
    embedded_task: asyncio.Task[None] | None = None
    task: asyncio.Task[None] | None = None
    autostart: bool = True  # False: a test drives the producer and the follower itself
    stop: asyncio.Event = field(default_factory=asyncio.Event)


# The process's face; None until first used (``usermetrics.testing.face_install`` replaces it in tests).
_face: Face | None = None


def _face_build() -> Face:
    """The face the settings describe (nothing started)."""
    cfg = get_config()
    name = process_name("face")
    registry = SubscriptionRegistry()
    bus: LocalBus | RedisBus
    directory = None
    receive = None
    if cfg.redis_url:
        redis = redis_client(cfg)
        bus = RedisBus(redis, prefix=cfg.redis_prefix)
        directory = SubscriptionDirectory(redis, prefix=cfg.redis_prefix)
        channel = face_channel(name)

        async def receive() -> dict[str, Any]:
            return await get_channel_layer().receive(channel)

    else:
        bus = LocalBus()
    follower = Follower(
        bus=bus,
        registry=registry,
        face=name,
        interval=cfg.refresh_interval,
        stale_after=cfg.producer_timeout,
        directory=directory,
        receive=receive,
    )
    return Face(name=name, bus=bus, registry=registry, follower=follower)


def face_get() -> Face:
    """The process's face (built from the settings on first use)."""
    global _face
    if _face is None:
        _face = _face_build()
    return _face


async def faces_start() -> None:
    """Start this process's follower on the serving loop, and its embedded producer when configured."""
    face = face_get()
    if not face.autostart or (face.task is not None and not face.task.done()):
        return
    cfg = get_config()
    face.stop = asyncio.Event()
    if cfg.producer == "embedded" and face.embedded is None:
        # The producer runs in a child process (a thread would hold the GIL against this loop);
        # without Redis it hands boards and frames to this process over a socket.
        bus = face.bus if isinstance(face.bus, LocalBus) else None
        face.embedded = ChildProducer(
            bus=bus,
            registry=face.registry,
            deliver=face.follower.deliver,
            command=child_command(),
            arrived=face.follower.board_arrived,
        )
        face.embedded_task = asyncio.get_running_loop().create_task(
            face.embedded.run(face.stop), name="usermetrics-embedded-producer"
        )
    face.task = asyncio.get_running_loop().create_task(face.follower.run(face.stop), name="usermetrics-follower")
    # The first requests wait a moment for a first board rather than say that nobody publishes.
    await face.follower.first_board(within=FIRST_BOARD_WAIT)
