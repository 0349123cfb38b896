"""A face's side for tests (sync helpers): three views, and a socket that keeps what the face hands it."""

from __future__ import annotations

from typing import Any

from usermetrics.feed.subscriptions import Subscription
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
        self.catch_ups: list[dict[str, Any]] = []

    async def metrics_update(self, event: dict[str, Any]) -> None:
        """Keep a frame."""
        self.frames.append(event)

    async def metrics_status(self, event: dict[str, Any]) -> None:
        """Keep a status message."""
        self.statuses.append(event)

    async def metrics_catch_up(self, event: dict[str, Any]) -> None:
        """Keep word of a newer board."""
        self.catch_ups.append(event)
