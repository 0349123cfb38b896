"""Leadership (async): exactly one producer refreshes, records and publishes; standbys wait to take over.

``RedisLease`` holds a key in Redis with an expiry of two refresh intervals and renews it every
refresh; a standby tries to take it every half interval, so after a leader is killed a standby
leads within two and a half intervals. Renewing and releasing compare the holder first (a Lua
script), so a producer that lost the lease never renews or deletes another one's. Without Redis
there is one producer per process and ``LocalLease`` always leads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# KEYS[1] = lease key, ARGV[1] = holder, ARGV[2] = milliseconds: renew only our own lease.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class LocalLease:
    """The only producer of its process: always the leader."""

    holder = "local"

    async def hold(self) -> bool:
        """Lead (always)."""
        return True

    async def keep(self, *, longest: float) -> None:
        """Nothing to renew."""

    async def release(self) -> None:
        """Nothing to give back."""


class RedisLease:
    """A lease in Redis, taken with SET NX and renewed by its holder only."""

    def __init__(self, redis: Redis, *, holder: str, ttl: float, key: str = "usermetrics:leader") -> None:
        """Hold ``key`` as ``holder`` for ``ttl`` seconds at a time."""
        self.redis = redis
        self.holder = holder
        self.ttl_ms = max(1, int(ttl * 1000))
        self.key = key
        self.leading = False
        self._error: str | None = None

    async def hold(self) -> bool:
        """Renew the lease if we lead, else try to take it; True while we lead.

        A Redis that does not answer means no lease: a producer that cannot renew stops leading
        (it could not publish anyway), and says so once.
        """
        try:
            if self.leading:
                self.leading = bool(await self.redis.eval(_RENEW, 1, self.key, self.holder, self.ttl_ms))
                if not self.leading:
                    logger.warning("Producer %s lost the lease: another producer leads now", self.holder)
            if not self.leading:
                self.leading = bool(await self.redis.set(self.key, self.holder, nx=True, px=self.ttl_ms))
                if self.leading:
                    logger.warning("Producer %s leads: it refreshes the sources, records and publishes", self.holder)
        except (RedisError, OSError) as exc:
            if self.leading or self._error != str(exc):
                logger.warning("Producer %s cannot reach Redis for its lease (%s): standing by", self.holder, exc)
            self._error = str(exc)
            self.leading = False
            return False
        self._error = None
        return self.leading

    async def keep(
        self,
        *,
        longest: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Renew the lease every third of its time to live while we lead, for at most ``longest`` seconds.

        Runs beside a refresh: a refresh that takes longer than the time to live (a million users
        on a busy machine) keeps its lease instead of losing it to a standby, which would start
        its own refresh from nothing and lose the lease in turn. A refresh stuck for ``longest``
        stops renewing, and its lease runs out as a dead leader's does.
        """
        every = self.ttl_ms / 3000
        end = clock() + longest
        while self.leading and clock() + every <= end:
            await sleep(every)
            renewal = asyncio.ensure_future(self.hold())
            try:
                await asyncio.shield(renewal)
            except asyncio.CancelledError:
                # Stopped mid-renewal: Redis may have done it already, so its answer says whether we lead.
                await renewal
                raise

    async def leader(self) -> str | None:
        """Who holds the lease now (None: nobody)."""
        value = await self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    async def release(self) -> None:
        """Give the lease up at once (a clean shutdown), so a standby need not wait for it to expire."""
        if not self.leading:
            return
        self.leading = False
        try:
            await self.redis.eval(_RELEASE, 1, self.key, self.holder)
        except (RedisError, OSError):
            logger.warning("Producer %s could not release its lease; it expires by itself", self.holder)
