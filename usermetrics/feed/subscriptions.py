"""Subscriptions of the live feed (sync registry, async directory): which socket watches what, and telling the producer.

A face keeps a ``SubscriptionRegistry`` of its own sockets: each channel subscribes to one thing
(a page of the list, or one user), and channels with the same subscription share its group. The
producer builds one frame per subscription that anyone holds and sends each face one message per
refresh with the frames of its subscriptions (``face_channel``); the face hands each frame to its
own sockets from the registry, so a refresh costs the channel layer one message per face, not one
per socket. In one process the producer reads the registry itself at each refresh; with Redis each
face advertises its subscriptions in a ``SubscriptionDirectory`` entry that expires unless renewed,
and adds a subscription it has not told yet at once (``add``, before the socket's first frame), so
that the producer's next refresh carries it.
(A "view" is a Django request handler; a websocket subscription is not one.)
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
    """A valid Channels group name for a subscription (ASCII, under 100 characters)."""
    return f"usermetrics.{kind}.{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def face_channel(face: str) -> str:
    """The channel-layer channel on which ``face`` receives the producer's frames (one message per refresh)."""
    return f"usermetrics.frames.{hashlib.sha256(face.encode()).hexdigest()[:40]}"


class Receiver(Protocol):
    """A socket as the registry hands it frames and the producer's state (a feed consumer)."""

    async def metrics_update(self, event: dict[str, Any]) -> None:
        """One frame of the socket's subscription: ``{"type", "text", "seq", "producer"}``."""

    async def metrics_status(self, event: dict[str, Any]) -> None:
        """The face's word on the producer: ``{"type", "text"}``."""

    async def metrics_catch_up(self, event: dict[str, Any]) -> None:
        """The face has a board the socket may have no frame of: ``{"type", "seq", "producer"}``."""


@dataclass(frozen=True)
class Subscription:
    """What one group of sockets subscribes to: a page of the list (``spec``) or one user."""

    spec: ViewSpec | None = None
    user_id: str | None = None

    def __post_init__(self) -> None:
        """Exactly one of the two."""
        if (self.spec is None) == (self.user_id is None):
            raise ValueError("a subscription is a list spec or a user id, exactly one")

    @property
    def group(self) -> str:
        """The subscription's Channels group."""
        if self.spec is not None:
            return group_name("list", self.spec.key)
        return group_name("user", self.user_id or "")

    def to_json(self) -> str:
        """The subscription as the directory stores it."""
        return json.dumps({"spec": asdict(self.spec)} if self.spec is not None else {"user_id": self.user_id})

    @classmethod
    def from_json(cls, text: str | bytes) -> Subscription:
        """A subscription from ``to_json`` (normalized again: the directory is shared, so read it as untrusted)."""
        doc: dict[str, Any] = json.loads(text)
        if "spec" in doc:
            return cls(spec=ViewSpec.from_params(doc["spec"]))
        return cls(user_id=str(doc["user_id"]))


class SubscriptionRegistry:
    """The subscriptions of this process's sockets (thread-safe: tests read it from other threads)."""

    def __init__(self) -> None:
        """Start with no socket."""
        self._lock = threading.Lock()
        self._groups: dict[str, tuple[Subscription, set[str]]] = {}
        self._channel_group: dict[str, str] = {}
        self._receivers: dict[str, Receiver] = {}
        self.changes = 0  # bumped when a subscription appears or goes, so advertisers know to renew

    def subscribe(self, channel: str, subscription: Subscription, receiver: Receiver | None = None) -> str:
        """Register ``channel`` for ``subscription`` (moving it off any earlier one); returns its group.

        ``receiver`` is the socket the face hands the subscription's frames to (None: counted, not fed).
        """
        group = subscription.group
        with self._lock:
            self._leave(channel)
            if receiver is not None:
                self._receivers[channel] = receiver
            entry = self._groups.get(group)
            if entry is None:
                entry = self._groups[group] = (subscription, set())
                self.changes += 1
            entry[1].add(channel)
            self._channel_group[channel] = group
        return group

    def unsubscribe(self, channel: str) -> str | None:
        """Forget ``channel``; a subscription nobody holds is dropped. Returns the group it left."""
        with self._lock:
            return self._leave(channel)

    def _leave(self, channel: str) -> str | None:
        self._receivers.pop(channel, None)
        group = self._channel_group.pop(channel, None)
        entry = self._groups.get(group) if group is not None else None
        if entry is not None:
            entry[1].discard(channel)
            if not entry[1]:
                del self._groups[group]  # type: ignore[arg-type]
                self.changes += 1
        return group

    def subscriptions(self) -> dict[str, Subscription]:
        """Every subscription held, by group (a copy)."""
        with self._lock:
            return {group: subscription for group, (subscription, _) in self._groups.items()}

    def subscription_of(self, group: str) -> Subscription | None:
        """A group's subscription, while somebody holds it."""
        with self._lock:
            entry = self._groups.get(group)
            return entry[0] if entry is not None else None

    def counts(self) -> dict[str, int]:
        """How many channels watch each group."""
        with self._lock:
            return {group: len(channels) for group, (_, channels) in self._groups.items()}

    def channels(self) -> list[str]:
        """Every registered channel."""
        with self._lock:
            return list(self._channel_group)

    def receivers(self, group: str | None = None) -> list[Receiver]:
        """The sockets watching ``group`` (None: every socket of this face)."""
        with self._lock:
            if group is None:
                return list(self._receivers.values())
            entry = self._groups.get(group)
            if entry is None:
                return []
            return [self._receivers[c] for c in entry[1] if c in self._receivers]


class SubscriptionDirectory:
    """Every face's subscriptions in Redis: one hash per face, expiring unless the face renews it."""

    def __init__(self, redis: Redis, *, prefix: str = "usermetrics") -> None:
        """Keep the directory under ``<prefix>:subscriptions:<face>``."""
        self.redis = redis
        self.prefix = prefix

    async def advertise(self, face: str, subscriptions: dict[str, Subscription], *, ttl: float) -> None:
        """Say what ``face``'s sockets subscribe to now (replacing what it said before), for ``ttl`` seconds."""
        key = f"{self.prefix}:subscriptions:{face}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if subscriptions:
                pipe.hset(key, mapping={group: sub.to_json() for group, sub in subscriptions.items()})
                pipe.pexpire(key, int(ttl * 1000))
            await pipe.execute()

    async def add(self, face: str, subscriptions: dict[str, Subscription], *, ttl: float) -> None:
        """Add ``subscriptions`` to what ``face`` advertised (a socket's new one, told at once), for ``ttl`` seconds."""
        if not subscriptions:
            return
        key = f"{self.prefix}:subscriptions:{face}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={group: sub.to_json() for group, sub in subscriptions.items()})
            pipe.pexpire(key, int(ttl * 1000))
            await pipe.execute()

    async def withdraw(self, face: str) -> None:
        """Forget ``face``'s subscriptions (it is shutting down)."""
        await self.redis.delete(f"{self.prefix}:subscriptions:{face}")

    async def collect_faces(self) -> dict[str, dict[str, Subscription]]:
        """Every live face's subscriptions, by face and then by group."""
        faces: dict[str, dict[str, Subscription]] = {}
        start = len(f"{self.prefix}:subscriptions:")
        async for key in self.redis.scan_iter(match=f"{self.prefix}:subscriptions:*", count=100):
            held: dict[str, Subscription] = {}
            for text in (await self.redis.hgetall(key)).values():
                try:
                    subscription = Subscription.from_json(text)
                except (ValueError, KeyError, TypeError):
                    continue  # a face of another version, or garbage: no frame for it
                held[subscription.group] = subscription
            if held:
                name = key.decode() if isinstance(key, bytes) else str(key)
                faces[name[start:]] = held
        return faces
