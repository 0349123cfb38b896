"""A face's word to the producer on its sockets' subscriptions (async): renewed, and a new one told at once.

Through Redis the producer learns what a face's sockets subscribe to from the face's entry in the
``SubscriptionDirectory``. The follower renews the whole entry each time it wakes (a board
published, or half an interval); a subscription nobody had is added at once (``announce``), before
the socket's first frame, so that the producer's next refresh carries it: waiting for the renewal
made a view subscribed just before a refresh miss that refresh. In one process (and to an embedded
child) the producer reads the registry itself at each refresh, and there is nothing to tell.

It also keeps the sockets that subscribed and have had no frame of the producer's since (``fresh``):
the producer may have read the subscriptions just before one was told, while this face did not have
yet the board it was publishing; the follower gives those sockets that board's frame when it comes.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from redis.exceptions import RedisError

from usermetrics.feed.subscriptions import Receiver, SubscriptionDirectory, SubscriptionRegistry

logger = logging.getLogger(__name__)


class Advertiser:
    """What one face has told the directory of its subscriptions, and which of its sockets are new."""

    def __init__(
        self, *, registry: SubscriptionRegistry, face: str, directory: SubscriptionDirectory | None, ttl: float
    ) -> None:
        """Tell ``directory`` (None: nothing to tell) of ``registry``'s subscriptions as ``face``, for ``ttl`` s."""
        self.registry = registry
        self.face = face
        self.directory = directory
        self.ttl = ttl
        # The groups the directory holds for this face as of our last word, and one word at a time:
        # a renewal (which replaces the entry) must not drop a subscription added while it was on its way.
        self._advertised: set[str] = set()
        self._lock = asyncio.Lock()
        self._fresh: weakref.WeakSet[Receiver] = weakref.WeakSet()

    async def advertise(self) -> None:
        """Renew the whole of this face's entry (a subscription nobody holds any more goes)."""
        if self.directory is None:
            return
        async with self._lock:
            held = self.registry.subscriptions()
            await self.directory.advertise(self.face, held, ttl=self.ttl)
            self._advertised = set(held)

    async def announce(self, receiver: Receiver | None = None) -> None:
        """Add at once the subscriptions not told yet; ``receiver`` (the socket that subscribed) is fresh until fed."""
        if receiver is not None:
            self._fresh.add(receiver)
        if self.directory is None:
            return
        async with self._lock:
            new = {g: sub for g, sub in self.registry.subscriptions().items() if g not in self._advertised}
            if not new:
                return
            try:
                await self.directory.add(self.face, new, ttl=self.ttl)
            except (RedisError, OSError) as exc:  # the renewal tells them once Redis is back
                logger.debug("Announcing %d subscriptions failed (%s)", len(new), exc)
                return
            self._advertised.update(new)

    def fed(self, receiver: Receiver) -> None:
        """``receiver`` had a frame of the producer's: it is fresh no more."""
        self._fresh.discard(receiver)

    def fresh_take(self) -> list[Receiver]:
        """The fresh sockets (each is given the next board once, then is fresh no more)."""
        fresh, self._fresh = list(self._fresh), weakref.WeakSet()
        return fresh
