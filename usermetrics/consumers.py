"""Websocket consumers of the live feed (async): the user list and one user, push-only, staff only.

A consumer registers itself for a view through the service layer, and the face hands it the
frames the producer sends for that view (one message per face per refresh, not one per socket);
it never collects metrics itself. The one frame it asks for is the full snapshot right after
connect or subscribe, built from this face's latest board and shared with every other subscriber
of that view and board. A frame it already sent (the same refresh) is not sent twice, nor one of
a view it has left. While no producer publishes, the socket stays open and says so with a
``status`` message.

What a client sends cannot hurt the server: a message is applied or ignored, subscriptions are
coalesced (one in flight, the latest wins, a few a second at most), and a client that keeps
sending what is not a subscription is closed with 4400. Each refresh re-checks the socket's
session: a logout, a password change, losing staff or being deactivated closes it with 4401.
A path no route matches is refused at the handshake (``NotFoundConsumer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any
from urllib.parse import parse_qsl

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from usermetrics import services
from usermetrics.selection import ViewSpec

logger = logging.getLogger(__name__)

# Inbound messages larger than this are ignored unread; a subscription is a few hundred bytes.
MAX_INBOUND = 4096
# Seconds between two subscriptions applied: a client flooding subscribes gets this many answers
# a second at most (each a whole frame), always for the latest view it asked for.
SUBSCRIBE_INTERVAL = 0.1
# A client that sends this many messages that are no subscription within BAD_WINDOW seconds is closed.
BAD_MESSAGES = 20
BAD_WINDOW = 10.0
# Close codes (the README's table; 4008, a client that does not read, is usermetrics.sockets').
CLOSE_BAD_MESSAGES = 4400
CLOSE_ACCESS_LOST = 4401
CLOSE_LAYER_DOWN = 4503  # the channel layer (Redis) failed: reconnect, the new socket joins afresh


def _inbound(text: str | None) -> object:
    """An inbound text message decoded, or None when it is none of JSON we read (too big, too deep, not JSON)."""
    if text is None or len(text) > MAX_INBOUND:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "[" * 2040 nests deeper than the decoder goes
        return None


class _OffSyncThread(AsyncWebsocketConsumer):
    """Channels' dispatch without its hop through Django's one sync thread before every event.

    Channels closes stale database connections before each handler, in the thread Django keeps
    for sync work, behind every sync view and history query of the process: under API load (the
    soak) a handshake or a subscription waited there for seconds. These consumers never use the
    ORM on the event loop; what reads the database (the handshake's user, the access re-check,
    the names) runs in a worker thread that closes its connection itself.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler of ``message``'s type (as Channels does, minus the connection hop)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


class _FeedConsumer(_OffSyncThread):
    """Shared plumbing: staff check, the view registered, forwarding ``metrics.update`` events."""

    group: str | None = None  # the view's group this socket is registered for
    accepted = False
    last_seq = 0  # the newest refresh this socket has been sent ...
    last_producer = ""  # ... by this producer (a producer that takes over without Redis's word restarts)
    closing = False  # closed by us: nothing more goes out, the disconnect cleans up
    access_task: asyncio.Task[None] | None = None  # the re-check of the session running now
    access_wanted: tuple[int, str] | None = None  # the refresh (seq, producer) whose check is still owed

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Per-socket state: the send order lock and the record of invalid messages."""
        super().__init__(*args, **kwargs)
        # A subscription's snapshot and the group's frames go out one at a time, in order.
        self.send_lock = asyncio.Lock()
        self.invalid_at: deque[float] = deque()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Run the socket; when the channel layer fails (Redis down) close it with 4503, not 1011.

        Its channel is received through Redis, so the socket must not linger on a dead layer: the
        browser reconnects (with backoff) and registers again.
        """
        try:
            await super().__call__(scope, receive, send)
        except services.CHANNEL_LAYER_ERRORS as exc:
            path = scope.get("path")
            logger.warning("Websocket %s closed with %d: the channel layer failed (%s)", path, CLOSE_LAYER_DOWN, exc)
            if getattr(self, "channel_name", None):
                services.feed_unsubscribe(self.channel_name)
            self.closing = True
            with contextlib.suppress(Exception):  # the connection may be gone already
                await send({"type": "websocket.close", "code": CLOSE_LAYER_DOWN, "reason": "live feed unavailable"})

    async def connect(self) -> None:
        """Accept staff only; then subscribe to the initial view and send its full snapshot."""
        user = self.scope.get("user")
        if user is None or not (user.is_active and user.is_staff):
            # Closing before accepting makes the server answer the handshake with 403.
            await self.close()
            return
        await self.accept()
        self.accepted = True
        await self.subscribe(**self.initial_subscription())

    def initial_subscription(self) -> dict[str, Any]:
        """Keyword arguments for ``services.feed_subscribe`` when the socket opens."""
        raise NotImplementedError

    async def subscribe(self, **view: Any) -> None:
        """Register this socket for ``view`` (off any earlier one) and send that view's full snapshot."""
        async with self.send_lock:
            if not self.closing:
                await self._subscribe(**view)

    async def _subscribe(self, **view: Any) -> None:
        self.group = services.feed_subscribe(self.channel_name, receiver=self, **view)
        # Told before the first frame goes out: every refresh after that frame carries this view.
        await services.feed_announce(self)
        if not await self._board_frame(newer_only=False):
            await self.send(text_data=services.feed_status())  # no board yet: say why nothing comes
            return
        if not services.producer_state().publishing:
            await self.send(text_data=services.feed_status())

    async def _board_frame(self, *, newer_only: bool) -> bool:
        """Send the view's frame of this face's latest board (``newer_only``: unless the socket has that refresh)."""
        first = await services.feed_first_frame(self.group or "")
        if first is None:
            return False
        text, seq, producer = first
        if not (newer_only and producer == self.last_producer and seq <= self.last_seq):
            self.last_seq, self.last_producer = seq, producer
            await self.send(text_data=text)
        return True

    async def refuse(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` and ``reason`` (once); the disconnect that follows cleans up."""
        if not self.closing:
            self.closing = True
            logger.info("Websocket %s closed with %d: %s", self.scope.get("path", ""), code, reason)
            await self.close(code=code, reason=reason)

    async def invalid(self) -> None:
        """Count a message that was ignored; too many of them in a short while close the socket."""
        now = asyncio.get_running_loop().time()
        self.invalid_at.append(now)
        while self.invalid_at and self.invalid_at[0] < now - BAD_WINDOW:
            self.invalid_at.popleft()
        if len(self.invalid_at) >= BAD_MESSAGES:
            await self.refuse(CLOSE_BAD_MESSAGES, "too many invalid messages")

    async def still_allowed(self, seq: int, producer: str) -> bool:
        """Whether the socket's session is still an active staff member's (re-read once per refresh)."""
        session = self.scope.get("session")
        user = self.scope.get("user")
        return await services.feed_access_check(
            session_key=getattr(session, "session_key", None),
            user_pk=getattr(user, "pk", None),
            seq=seq,
            producer=producer,
        )

    async def disconnect(self, code: int) -> None:
        """Leave the feed."""
        self.closing = True
        if self.access_task is not None:
            self.access_task.cancel()
        if not self.accepted:
            return  # refused before it was accepted: it never registered
        services.feed_unsubscribe(self.channel_name)
        self.group = None

    async def metrics_update(self, event: dict[str, Any]) -> None:
        """Forward one pre-serialized frame as it is, unless this socket already has that refresh.

        Each refresh also re-checks the session, beside the frame rather than before it (the check
        is a database read, and a frame waiting on it reached every socket late): a session that
        ended closes the socket with 4401, at most that refresh's frame after it ended.
        """
        seq, producer = int(event.get("seq", 0)), str(event.get("producer", ""))
        if self.closing or event.get("group", self.group) != self.group:
            return  # closed, or a frame of a view this socket left while the frame was on its way
        # The latest refresh's check is wanted: one still running may have read the session before
        # it ended, so it cannot answer for this refresh.
        self.access_wanted = (seq, producer)
        if self.access_task is None or self.access_task.done():
            self.access_task = asyncio.ensure_future(self._access_recheck())
        async with self.send_lock:
            stale = event.get("group", self.group) != self.group  # moved while waiting for the lock
            if self.closing or stale or (producer == self.last_producer and seq <= self.last_seq):
                return
            self.last_seq, self.last_producer = seq, producer
            await self.send(text_data=event["text"])

    async def _access_recheck(self) -> None:
        """Check the session as of the latest refresh, again while a newer one came during the check."""
        while self.access_wanted is not None and not self.closing:
            (seq, producer), self.access_wanted = self.access_wanted, None
            if not await self.still_allowed(seq, producer):
                await self.refuse(CLOSE_ACCESS_LOST, "session ended or no longer staff")
                return

    async def metrics_catch_up(self, event: dict[str, Any]) -> None:
        """The face has a newer board than this new subscriber's first frame: its frame, unless the producer's came."""
        async with self.send_lock:
            seq, producer = int(event.get("seq", 0)), str(event.get("producer", ""))
            if self.closing or self.group is None or (producer == self.last_producer and seq <= self.last_seq):
                return
            await self._board_frame(newer_only=True)

    async def metrics_status(self, event: dict[str, Any]) -> None:
        """Forward the face's word on the producer (gone, or back)."""
        async with self.send_lock:
            if not self.closing:
                await self.send(text_data=event["text"])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Push-only by default: every inbound message is ignored, and counted."""
        await self.invalid()


class UserListConsumer(_FeedConsumer):
    """``/ws/monitor/``: a page of the user list; the client changes it with ``subscribe`` messages."""

    def initial_subscription(self) -> dict[str, Any]:
        """The view in the socket's query string (``?page=2&sort=-error_count``), else the default."""
        query = self.scope.get("query_string", b"").decode("latin-1")
        return {"spec": ViewSpec.from_params(dict(parse_qsl(query)))}

    pending: ViewSpec | None = None  # the latest subscription not applied yet
    subscriber: asyncio.Task[None] | None = None
    next_subscribe = 0.0  # loop time before which no further subscription is applied

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Take ``{"type": "subscribe", ...}`` as the view wanted next; every other message is ignored, and counted."""
        message = _inbound(text_data)
        if not isinstance(message, dict) or message.get("type") != "subscribe":
            await self.invalid()
            return
        # The latest wins: one that waits is replaced, and at most one is being applied.
        self.pending = ViewSpec.from_params(message)
        if self.subscriber is None or self.subscriber.done():
            self.subscriber = asyncio.ensure_future(self._apply_subscriptions())

    async def _apply_subscriptions(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending is not None and not self.closing:
            wait = self.next_subscribe - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            spec, self.pending = self.pending, None
            self.next_subscribe = loop.time() + SUBSCRIBE_INTERVAL
            try:
                await self.subscribe(spec=spec)
            except services.CHANNEL_LAYER_ERRORS as exc:  # off the dispatch loop: __call__ does not see it
                logger.warning("Websocket %s: the channel layer failed (%s)", self.scope.get("path"), exc)
                await self.refuse(CLOSE_LAYER_DOWN, "live feed unavailable")

    async def disconnect(self, code: int) -> None:
        """Stop applying subscriptions, then leave the feed."""
        self.closing = True
        if self.subscriber is not None:
            self.subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.subscriber
        await super().disconnect(code)


class UserDetailConsumer(_FeedConsumer):
    """``/ws/monitor/users/<id>/``: one user as a one-element list (empty when the user is gone)."""

    def initial_subscription(self) -> dict[str, Any]:
        """The user id from the URL (decoded by the ``userid`` converter)."""
        return {"user_id": self.scope["url_route"]["kwargs"]["user_id"]}


class NotFoundConsumer(_OffSyncThread):
    """Any websocket path no route matches: refused at the handshake (403 on Daphne), in one log line."""

    async def connect(self) -> None:
        """Refuse without accepting."""
        logger.info("Websocket refused: no route for %r", self.scope.get("path", ""))
        await self.close()
