"""Subscribed views (sync registry, async directory): which socket watches what, and telling the producer.

A face keeps a ``ViewRegistry`` of its own sockets: each channel watches one view (a page of the
list, or one user), and channels on the same view share its Channels group. The producer builds
one frame per view that anyone watches: in one process it reads the registry itself; with Redis
each face advertises its views in a ``ViewDirectory`` entry that expires unless renewed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from usermetrics.selection import ViewSpec


def group_name(kind: str, key: str) -> str:
    """A valid Channels group name for a view (ASCII, under 100 characters)."""
    return f"usermetrics.{kind}.{hashlib.sha256(key.encode()).hexdigest()[:40]}"


@dataclass(frozen=True)
class View:
    """What one group of sockets watches: a page of the list (``spec``) or one user."""

    spec: ViewSpec | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        """Exactly one of the two."""
        if (self.spec is None) == (self.user_id is None):
            raise ValueError("a view is a list spec or a user id, exactly one")

    @property
    def group(self) -> str:
        """The view's Channels group."""
        if self.spec is not None:
            return group_name("view", self.spec.key)
        return group_name("user", self.user_id or "")

    def to_json(self) -> str:
        """The view as the directory stores it."""
        return json.dumps({"spec": asdict(self.spec)} if self.spec is not None else {"user_id": self.user_id})

    @classmethod
    def from_json(cls, text: str | bytes) -> View:
        """A view from ``to_json`` (normalized again: the directory is shared, so read it as untrusted)."""
        doc: dict[str, Any] = json.loads(text)
        if "spec" in doc:
            return cls(spec=ViewSpec.from_params(doc["spec"]))
        return cls(user_id=str(doc["user_id"]))


class ViewRegistry:
    """The views this process's sockets watch (thread-safe: tests read it from other threads)."""

    def __init__(self) -> None:
        """Start with no socket."""
        self._lock = threading.Lock()
        self._views: dict[str, tuple[View, set[str]]] = {}
        self._channel_group: dict[str, str] = {}
        self.changes = 0  # bumped when a view appears or goes, so advertisers know to renew

    def subscribe(self, channel: str, view: View) -> str:
        """Register ``channel`` for ``view`` (moving it off any earlier view); returns the view's group."""
        group = view.group
        with self._lock:
            self._leave(channel)
            entry = self._views.get(group)
            if entry is None:
                entry = self._views[group] = (view, set())
                self.changes += 1
            entry[1].add(channel)
            self._channel_group[channel] = group
        return group

    def unsubscribe(self, channel: str) -> str | None:
        """Forget ``channel``; a view nobody watches is dropped. Returns the group it left."""
        with self._lock:
            return self._leave(channel)

    def _leave(self, channel: str) -> str | None:
        group = self._channel_group.pop(channel, None)
        entry = self._views.get(group) if group is not None else None
        if entry is not None:
            entry[1].discard(channel)
            if not entry[1]:
                del self._views[group]  # type: ignore[arg-type]
                self.changes += 1
        return group

    def views(self) -> dict[str, View]:
        """Every watched view by group (a copy)."""
        with self._lock:
            return {group: view for group, (view, _) in self._views.items()}

    def view_of(self, group: str) -> View | None:
        """The view a group watches, while somebody watches it."""
        with self._lock:
            entry = self._views.get(group)
            return entry[0] if entry is not None else None

    def counts(self) -> dict[str, int]:
        """How many channels watch each group."""
        with self._lock:
            return {group: len(channels) for group, (_, channels) in self._views.items()}

    def channels(self) -> list[str]:
        """Every registered channel."""
        with self._lock:
            return list(self._channel_group)


class ViewDirectory:
    """Every face's watched views in Redis: one hash per face, expiring unless the face renews it."""

    def __init__(self, redis: Redis, *, prefix: str = "usermetrics") -> None:
        """Keep the directory under ``<prefix>:views:<face>``."""
        self.redis = redis
        self.prefix = prefix

    async def advertise(self, face: str, views: dict[str, View], *, ttl: float) -> None:
        """Say which views ``face`` watches now (replacing what it said before), for ``ttl`` seconds."""
        key = f"{self.prefix}:views:{face}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if views:
                pipe.hset(key, mapping={group: view.to_json() for group, view in views.items()})
                pipe.pexpire(key, int(ttl * 1000))
            await pipe.execute()

    async def withdraw(self, face: str) -> None:
        """Forget ``face``'s views (it is shutting down)."""
        await self.redis.delete(f"{self.prefix}:views:{face}")

    async def collect(self) -> dict[str, View]:
        """Every view any live face watches, by group."""
        views: dict[str, View] = {}
        async for key in self.redis.scan_iter(match=f"{self.prefix}:views:*", count=100):
            for text in (await self.redis.hgetall(key)).values():
                try:
                    view = View.from_json(text)
                except (ValueError, KeyError, TypeError):
                    continue  # a face of another version, or garbage: no frame for it
                views[view.group] = view
        return views
