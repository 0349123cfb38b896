"""Websocket consumers of the live feed (async): the user list and one user, push-only, staff only.

A consumer registers its channel for a view through the service layer and forwards the frames
the producer sends to the view's group; it never collects metrics itself. The one frame it asks
for is the full snapshot right after connect or subscribe, built from this face's latest board
and shared with every other subscriber of that view and board. A frame it already sent (the
same refresh, through the group) is not sent twice. While no producer publishes, the socket
stays open and says so with a ``status`` message.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from channels.generic.websocket import AsyncWebsocketConsumer

from usermetrics import services
from usermetrics.selection import ViewSpec

logger = logging.getLogger(__name__)

# Inbound messages larger than this are ignored unread; a subscription is a few hundred bytes.
MAX_INBOUND = 4096


class _FeedConsumer(AsyncWebsocketConsumer):
    """Shared plumbing: staff check, group membership, forwarding ``metrics.update`` events."""

    group: str | None = None
    status_group: str | None = None
    last_seq = 0  # the newest refresh this socket has been sent ...
    last_producer = ""  # ... by this producer (a producer that takes over without Redis's word restarts)

    async def connect(self) -> None:
        """Accept staff only; then subscribe to the initial view and send its full snapshot."""
        user = self.scope.get("user")
        if user is None or not (user.is_active and user.is_staff):
            # Closing before accepting makes the server answer the handshake with 403.
            await self.close()
            return
        await self.accept()
        self.status_group = services.feed_status_group()
        await self.channel_layer.group_add(self.status_group, self.channel_name)
        await self.subscribe(**self.initial_subscription())

    def initial_subscription(self) -> dict[str, Any]:
        """Keyword arguments for ``services.feed_subscribe`` when the socket opens."""
        raise NotImplementedError

    async def subscribe(self, **view: Any) -> None:
        """Move this channel to ``view``'s group and send that view's full snapshot."""
        group = services.feed_subscribe(self.channel_name, **view)
        if group != self.group:
            if self.group is not None:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.channel_layer.group_add(group, self.channel_name)
            self.group = group
        first = await services.feed_first_frame(group)
        if first is None:
            await self.send(text_data=services.feed_status())  # no board yet: say why nothing comes
            return
        text, seq, producer = first
        self.last_seq, self.last_producer = seq, producer
        await self.send(text_data=text)
        if not services.producer_state().publishing:
            await self.send(text_data=services.feed_status())

    async def disconnect(self, code: int) -> None:
        """Leave the groups and the feed."""
        if self.status_group is None:
            return  # refused before it was accepted: it never joined anything
        services.feed_unsubscribe(self.channel_name)
        for group in (self.group, self.status_group):
            if group is not None:
                await self.channel_layer.group_discard(group, self.channel_name)
        self.group = self.status_group = None

    async def metrics_update(self, event: dict[str, Any]) -> None:
        """Forward one pre-serialized frame as it is, unless this socket already has that refresh."""
        seq, producer = int(event.get("seq", 0)), str(event.get("producer", ""))
        if producer == self.last_producer and seq <= self.last_seq:
            return
        self.last_seq, self.last_producer = seq, producer
        await self.send(text_data=event["text"])

    async def metrics_status(self, event: dict[str, Any]) -> None:
        """Forward the face's word on the producer (gone, or back)."""
        await self.send(text_data=event["text"])


class MonitorConsumer(_FeedConsumer):
    """``/ws/monitor/``: a page of the user list; the client changes it with ``subscribe`` messages."""

    def initial_subscription(self) -> dict[str, Any]:
        """The view in the socket's query string (``?page=2&sort=-error_count``), else the default."""
        query = self.scope.get("query_string", b"").decode("latin-1")
        return {"spec": ViewSpec.from_params(dict(parse_qsl(query)))}

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Handle ``{"type": "subscribe", ...}``; every other inbound message is ignored."""
        if text_data is None or len(text_data) > MAX_INBOUND:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "subscribe":
            await self.subscribe(spec=ViewSpec.from_params(message))


class UserConsumer(_FeedConsumer):
    """``/ws/monitor/users/<id>/``: one user as a one-element list (empty when the user is gone)."""

    def initial_subscription(self) -> dict[str, Any]:
        """The user id from the URL (decoded by the ``userid`` converter)."""
        return {"user_id": self.scope["url_route"]["kwargs"]["user_id"]}

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Push-only: inbound messages are ignored."""
