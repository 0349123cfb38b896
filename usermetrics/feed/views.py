"""Subscribed views (sync registry, async directory): which socket watches what, and telling the producer.

A face keeps a ``ViewRegistry`` of its own sockets: each channel watches one view (a page of the
list, or one user), and channels on the same view share its group. The producer builds one frame
per view that anyone watches and sends each face one message per refresh with the frames of its
views (``face_channel``); the face hands each frame to its own sockets from the registry, so a
refresh costs the channel layer one message per face, not one per socket. In one process the
producer reads the registry itself; with Redis each face advertises its views in a
``ViewDirectory`` entry that expires unless renewed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from usermetrics.selection import ViewSpec


def group_name(kind: str, key: str) -> str:
    """A valid Channels group name for a view (ASCII, under 100 characters)."""
    return f"usermetrics.{kind}.{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def face_channel(face: str) -> str:
    """The channel-layer channel on which ``face`` receives the producer's frames (one message per refresh)."""
    return f"usermetrics.frames.{hashlib.sha256(face.encode()).hexdigest()[:40]}"


class Receiver(Protocol):
    """A socket as the registry hands it frames and the producer's state (a feed consumer)."""

    async def metrics_update(self, event: dict[str, Any]) -> None:
        """One frame of the socket's view: ``{"type", "text", "seq", "producer"}``."""

    async def metrics_status(self, event: dict[str, Any]) -> None:
        """The face's word on the producer: ``{"type", "text"}``."""


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
        self._receivers: dict[str, Receiver] = {}
        self.changes = 0  # bumped when a view appears or goes, so advertisers know to renew

    def subscribe(self, channel: str, view: View, receiver: Receiver | None = None) -> str:
        """Register ``channel`` for ``view`` (moving it off any earlier view); returns the view's group.

        ``receiver`` is the socket the face hands the view's frames to (None: counted, not fed).
        """
        group = view.group
        with self._lock:
            self._leave(channel)
            if receiver is not None:
                self._receivers[channel] = receiver
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
        self._receivers.pop(channel, None)
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

    def receivers(self, group: str | None = None) -> list[Receiver]:
        """The sockets watching ``group`` (None: every socket of this face)."""
        with self._lock:
            if group is None:
                return list(self._receivers.values())
            entry = self._views.get(group)
            if entry is None:
                return []
            return [self._receivers[c] for c in entry[1] if c in self._receivers]


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

    async def collect_faces(self) -> dict[str, dict[str, View]]:
        """Every live face's watched views, by face and then by group."""
        faces: dict[str, dict[str, View]] = {}
        start = len(f"{self.prefix}:views:")
        async for key in self.redis.scan_iter(match=f"{self.prefix}:views:*", count=100):
            views: dict[str, View] = {}
            for text in (await self.redis.hgetall(key)).values():
                try:
                    view = View.from_json(text)
                except (ValueError, KeyError, TypeError):
                    continue  # a face of another version, or garbage: no frame for it
                views[view.group] = view
            if views:
                name = key.decode() if isinstance(key, bytes) else str(key)
                faces[name[start:]] = views
        return faces
