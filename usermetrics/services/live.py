"""Live data for the faces (async): the latest board, the producer's state, the status, and the feed's registry.

Faces never read a source: they serve what the producer published, as this process's face
(``publish.face``) follows it.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

import usermetrics
from usermetrics.board import Board, board_empty
from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.feed.builder import first_frame
from usermetrics.feed.subscriptions import Receiver, Subscription
from usermetrics.pricing import aprice_table_get
from usermetrics.publish.face import face_get
from usermetrics.publish.follower import ProducerState
from usermetrics.selection import ViewSpec
from usermetrics.snapshot import iso

from .names import labels_aget

VERSION = usermetrics.__version__
# What a channel layer raises when its Redis is unreachable: a socket then closes and reconnects.
CHANNEL_LAYER_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)


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


# --- the feed --------------------------------------------------------------------------------------


def feed_subscribe(
    channel: str, *, receiver: Receiver | None = None, spec: ViewSpec | None = None, user_id: str | None = None
) -> str:
    """Move ``channel`` to a page of the list or to one user (its frames go to ``receiver``); returns that group."""
    return face_get().registry.subscribe(channel, Subscription(spec=spec, user_id=user_id), receiver)


async def feed_announce(receiver: Receiver | None = None) -> None:
    """Tell the producer at once of a subscription it has not been told of, so that its next refresh carries it.

    ``receiver``: the socket that subscribed; it is told of the face's next board (``metrics_catch_up``).
    """
    await face_get().follower.advertiser.announce(receiver)


def feed_unsubscribe(channel: str) -> None:
    """Forget ``channel`` (it closed)."""
    face_get().registry.unsubscribe(channel)


async def feed_first_frame(group: str) -> tuple[str, int, str] | None:
    """A new subscriber's full frame of ``group``, its sequence number and producer (None: no board yet)."""
    face = face_get()
    board = face.follower.latest()
    subscription = face.registry.subscription_of(group)
    if board is None or subscription is None:
        return None
    # Only a user's frame carries a cost (the list's rows do not).
    prices = await aprice_table_get() if subscription.user_id is not None else None
    frame = first_frame(board, subscription, labels=await labels_aget(), prices=prices)
    return frame, board.seq, board.producer


def feed_status() -> str:
    """The status message a socket gets while no producer publishes."""
    return face_get().follower.status_text()
