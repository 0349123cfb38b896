"""Live data for the faces (async): the latest board, the producer's state, names, and the feed's registry.

Faces never read a source: they serve what the producer published. The process's ``Face`` holds
the bus it follows (the local bus of an embedded producer, or Redis), the registry of its
sockets' views and the follower that keeps the latest board; ``faces_start`` starts the follower
on the serving loop and, with ``USERMETRICS_PRODUCER=embedded``, the producer as a child process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from channels.layers import get_channel_layer
from redis.exceptions import RedisError

import usermetrics
from usermetrics import identities
from usermetrics.board import Board, board_empty
from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.feed.builder import first_frame
from usermetrics.feed.views import Receiver, View, ViewDirectory, ViewRegistry, face_channel
from usermetrics.publish.bus import LocalBus, RedisBus
from usermetrics.publish.child import ChildProducer, child_command
from usermetrics.publish.follower import Follower, ProducerState
from usermetrics.publish.lease import LocalLease
from usermetrics.publish.producer import Producer
from usermetrics.selection import ViewSpec
from usermetrics.snapshot import iso

from .assembly import ONE_FACE, monitor_build, process_name, producer_build, redis_client

logger = logging.getLogger(__name__)

VERSION = usermetrics.__version__
# What a channel layer raises when its Redis is unreachable: a socket then closes and reconnects.
CHANNEL_LAYER_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
FIRST_BOARD_WAIT = 5.0  # seconds a starting face waits for its first board


@dataclass
class Face:
    """This process's side of the bus: what it follows, its sockets' views, the follower."""

    name: str
    bus: LocalBus | RedisBus
    registry: ViewRegistry
    follower: Follower
    embedded: ChildProducer | None = None
    embedded_task: asyncio.Task[None] | None = None
    task: asyncio.Task[None] | None = None
    autostart: bool = True  # False: a test drives the producer and the follower itself
    stop: asyncio.Event = field(default_factory=asyncio.Event)


_face: Face | None = None


def _face_build() -> Face:
    """The face the settings describe (nothing started)."""
    cfg = get_config()
    name = process_name("face")
    registry = ViewRegistry()
    bus: LocalBus | RedisBus
    directory = None
    if cfg.redis_url:
        redis = redis_client(cfg)
        bus = RedisBus(redis, prefix=cfg.redis_prefix)
        directory = ViewDirectory(redis, prefix=cfg.redis_prefix)
    else:
        bus = LocalBus()
    receive = None
    if cfg.redis_url:
        channel = face_channel(name)

        async def receive() -> dict[str, Any]:
            return await get_channel_layer().receive(channel)

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


def face_install(face: Face | None) -> Face | None:
    """Install ``face`` (None: rebuild from the settings next time); returns the previous one (tests)."""
    global _face
    previous, _face = _face, face
    return previous


def face_local(bus: LocalBus | None = None) -> Face:
    """A face on a local bus, with no follower task (tests drive the producer themselves)."""
    cfg = get_config()
    bus = bus or LocalBus()
    registry = ViewRegistry()
    follower = Follower(
        bus=bus, registry=registry, face=ONE_FACE, interval=cfg.refresh_interval, stale_after=cfg.producer_timeout
    )
    return Face(name=ONE_FACE, bus=bus, registry=registry, follower=follower, autostart=False)


def producer_local(face: Face, **monitor_kwargs: Any) -> Producer:
    """A producer on ``face``'s local bus, handing frames to ``face``'s sockets (tests, one process)."""

    async def send(_face: str, message: dict[str, object]) -> None:
        face.follower.deliver(message)

    assert isinstance(face.bus, LocalBus)
    monitor = monitor_kwargs.pop("monitor", None) or monitor_build()
    return producer_build(
        monitor=monitor,
        bus=face.bus,
        lease=LocalLease(),
        views=face.registry,
        send=send,
        record=False,
        alert=False,
        name="local",
    )


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
            bus=bus, registry=face.registry, deliver=face.follower.deliver, command=child_command()
        )
        face.embedded_task = asyncio.get_running_loop().create_task(
            face.embedded.run(face.stop), name="usermetrics-embedded-producer"
        )
    face.task = asyncio.get_running_loop().create_task(face.follower.run(face.stop), name="usermetrics-follower")
    # The first requests wait a moment for a first board rather than say that nobody publishes.
    await face.follower.first_board(within=FIRST_BOARD_WAIT)


def faces_stop() -> None:
    """Stop the embedded producer (SIGTERM: its history flushed) and the follower."""
    face = _face
    if face is None:
        return
    face.stop.set()
    if face.embedded is not None:
        face.embedded.stop_child()
        face.embedded = None


# --- what the faces read ---------------------------------------------------------------------------


def board_get() -> Board:
    """The latest published board (a board of nobody before any producer published)."""
    board = face_get().follower.latest()
    return board if board is not None else board_empty(utcnow())


def producer_state() -> ProducerState:
    """Whether a producer publishes, and when it last did."""
    return face_get().follower.state()


def source_status() -> dict[str, Any]:
    """Health of every source as last published, the producer's state, the refresh interval and the version."""
    cfg = get_config()
    board = board_get()
    return {
        "version": VERSION,
        "refresh_interval": cfg.refresh_interval,
        "source_timeout": cfg.source_timeout,
        "source_down_after": cfg.source_down_after,
        "last_refresh": iso(board.timestamp) if board.seq else None,
        "seq": board.seq,
        "total_users": len(board),
        "producer": producer_state().as_dict(),
        "sources": [h.as_dict() for h in board.sources],
    }


def labels_get() -> dict[str, str]:
    """Registered names, ``user_id -> label`` (sync; cached, read at most every 30 s)."""
    return identities.identity_labels()


async def labels_aget() -> Mapping[str, str]:
    """Registered names (async; none while the database cannot be read: names are a nicety)."""
    try:
        return await identities.identity_labels_aget()
    except Exception:
        logger.warning("Identity labels unavailable; showing ids without names", exc_info=True)
        return {}


def identities_import(*, rows: TextIO) -> identities.ImportResult:
    """Register every ``label,kind,value`` line of a CSV; all lines or none (``importidentities``)."""
    return identities.identities_import(rows=rows)


# --- the feed --------------------------------------------------------------------------------------


def feed_subscribe(
    channel: str, *, receiver: Receiver | None = None, spec: ViewSpec | None = None, user_id: str | None = None
) -> str:
    """Move ``channel`` to a list view or one user's view (its frames go to ``receiver``); returns that view's group."""
    return face_get().registry.subscribe(channel, View(spec=spec, user_id=user_id), receiver)


def feed_unsubscribe(channel: str) -> None:
    """Forget ``channel`` (it closed)."""
    face_get().registry.unsubscribe(channel)


async def feed_first_frame(group: str) -> tuple[str, int, str] | None:
    """A new subscriber's full frame of ``group``'s view, its sequence number and producer (None: no board yet)."""
    face = face_get()
    board = face.follower.latest()
    view = face.registry.view_of(group)
    if board is None or view is None:
        return None
    return first_frame(board, view, labels=await labels_aget()), board.seq, board.producer


def feed_status() -> str:
    """The status message a socket gets while no producer publishes."""
    return face_get().follower.status_text()
