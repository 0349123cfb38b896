"""The companion's reporter (async, no NAT import): every interval, this worker's users into the Redis stream.

Each interval it runs the seed's ``PerUserMetricsCollector`` over every session manager of the
worker (an endpoint each), a few users at a time so that NAT's requests never wait on it, keeps
the users whose record or figures changed since its last report, and adds one report to the
stream (``XADD ... MAXLEN ~``): those users, and the ones that left. Every ``full_every`` reports,
and after a report was lost, it lists every user instead. While Redis is unreachable NAT keeps
serving: at most ``buffer`` reports wait, the oldest dropped first and counted (the report built
next then lists every user). A failure is logged once per kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .metrics import PerUserMetricsCollector, PerUserResourceUsage, PerUserSessionMetrics, _fingerprint
from .report import FIELD, VERSION, Header, UserExtras, WorkerIdentity, encode, line_of, utc_now
from .settings import CompanionSettings

logger = logging.getLogger("usermetrics_nat")

NO_EXTRAS = UserExtras()
SEND_TIMEOUT = 5.0  # seconds one XADD may take before Redis counts as unreachable
# Users built between two returns to NAT's loop: a few dozen microseconds each, so NAT's requests
# never wait on the reporter for as long as a millisecond.
CHUNK = 8


def in_utc(usage: PerUserResourceUsage) -> PerUserResourceUsage:
    """The record with NAT's naive local times as aware UTC (the worker knows its own zone)."""
    s = usage.session
    return usage.model_copy(
        update={
            "session": PerUserSessionMetrics.model_construct(
                created_at=s.created_at.astimezone(UTC),
                last_activity=s.last_activity.astimezone(UTC),
                ref_count=s.ref_count,
                is_active=s.is_active,
            )
        }
    )


class Reporter:
    """Reports one worker's users every interval until stopped."""

    def __init__(
        self,
        managers: Sequence[Any],
        *,
        settings: CompanionSettings,
        identity: WorkerIdentity,
        redis: Redis,
    ) -> None:
        """Report the users of ``managers`` (NAT's session managers, one per endpoint) as ``identity``."""
        self.managers = list(managers)
        self.settings = settings
        self.identity = identity
        self.redis = redis
        self.collectors = [PerUserMetricsCollector(m) for m in self.managers]
        self.seq = 0
        self.sent = 0
        self.dropped = 0  # reports lost while Redis was unreachable (the buffer was full)
        # (endpoint, user) -> what its line was built from, and the line: an unchanged user's line is reused.
        self._last: dict[tuple[int, str], tuple[Any, bytes]] = {}
        self._buffer: deque[bytes] = deque()
        self._full_next = True
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- building a report ---------------------------------------------------------------------

    async def build(self, *, bye: bool = False) -> bytes:
        """The next report's payload (what changed since the last one built, or everyone).

        A user's record is built by the seed's collector (``_build_user_metrics``) only when what
        it reads changed (the collector's own fingerprint) or its meters moved; an unchanged user's
        line is the one sent before. The work is done ``CHUNK`` users at a time under the session
        manager's lock, handing the loop back to NAT's requests between chunks.
        """
        self.seq += 1
        full = self._full_next or self.seq % self.settings.full_every == 1 or self.settings.full_every == 1
        self._full_next = False
        lines: list[bytes] = []
        seen: dict[tuple[int, str], tuple[Any, bytes]] = {}
        for endpoint, (manager, collector) in enumerate(zip(self.managers, self.collectors, strict=True)):
            lock = manager._per_user_builders_lock
            async with lock:
                users = list(manager._per_user_builders.items())
            stats_of = getattr(manager, "stats_of", None)
            for start in range(0, len(users), CHUNK):
                async with lock:
                    for user_id, info in users[start : start + CHUNK]:
                        if manager._per_user_builders.get(user_id) is not info:
                            continue  # gone meanwhile: the next report says so
                        stats = stats_of(user_id) if stats_of is not None else None
                        key = (endpoint, user_id)
                        mark = (_fingerprint(info), stats.fingerprint() if stats is not None else None)
                        before = self._last.get(key)
                        if before is not None and before[0] == mark and mark[0] is not None:
                            seen[key] = before
                            if full:
                                lines.append(before[1])
                            continue
                        try:
                            usage = collector._build_user_metrics(user_id, info)
                        except Exception:
                            logger.exception("usermetrics companion: no metrics for user %s", user_id)
                            continue
                        line = line_of(endpoint, in_utc(usage), stats.extras() if stats is not None else NO_EXTRAS)
                        seen[key] = (mark, line)
                        lines.append(line)
                await asyncio.sleep(0)  # NAT's requests run between two chunks
        gone = [key for key in self._last if key not in seen]
        self._last = seen
        try:
            header = Header(
                v=VERSION,
                deployment=self.settings.deployment,
                worker=self.identity,
                seq=self.seq,
                full=full,
                interval=self.settings.interval,
                sent_at=utc_now(),
                gone=gone,
                dropped=self.dropped,
                bye=bye,
            )
            # Encoding a full report of many users is the one long piece of work: off the serving loop.
            return await asyncio.to_thread(encode, header, lines)
        except BaseException:
            self._full_next = True  # what this report would have said is said by the next, in full
            raise

    # -- sending -------------------------------------------------------------------------------

    async def flush(self) -> bool:
        """Add every waiting report to the stream, oldest first; False while Redis is unreachable."""
        try:
            while self._buffer:
                await asyncio.wait_for(
                    self.redis.xadd(
                        self.settings.stream,
                        {FIELD: self._buffer[0]},
                        maxlen=self.settings.maxlen,
                        approximate=True,
                    ),
                    SEND_TIMEOUT,
                )
                self._buffer.popleft()
                self.sent += 1
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return False
        if self._last_error is not None:
            logger.warning("usermetrics companion: reporting to %s again", self.settings.stream)
        self._last_error = None
        return True

    def _failed(self, message: str) -> None:
        if message != self._last_error:
            logger.warning(
                "usermetrics companion: cannot report to Redis (%s); NAT keeps serving, %d report(s) wait",
                message,
                len(self._buffer),
            )
        self._last_error = message

    # -- running -------------------------------------------------------------------------------

    async def tick(self) -> bool:
        """Send what waits, then build and send one report now (each interval); False while Redis is away.

        At most ``buffer`` reports wait: when the buffer is full the oldest goes (counted), and the
        report built next lists every user, so that what was lost is said again.
        """
        if self._buffer:
            await self.flush()
        while len(self._buffer) >= self.settings.buffer:
            self._buffer.popleft()
            self.dropped += 1
            self._full_next = True
        self._buffer.append(await self.build())
        return await self.flush()

    async def run(self) -> None:
        """Report every interval until ``stop()``."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            started = loop.time()
            try:
                await self.tick()
            except Exception as exc:  # one bad report never ends the reporting, nor NAT
                message = f"{type(exc).__name__}: {exc}"
                if message != self._last_error:
                    logger.exception("usermetrics companion: building a report failed")
                self._last_error = message
            try:
                await asyncio.wait_for(self._stop.wait(), max(0.0, self.settings.interval - (loop.time() - started)))
            except TimeoutError:
                pass

    def start(self) -> None:
        """Run on the current loop (a worker's, once its app started)."""
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(self.run(), name="usermetrics-companion")

    async def stop(self) -> None:
        """Stop reporting; say goodbye (the worker's share ends at once), and close the connection."""
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            self._buffer.append(await self.build(bye=True))
            await asyncio.wait_for(self.flush(), SEND_TIMEOUT)
        except Exception:
            logger.warning("usermetrics companion: the last report could not be sent", exc_info=True)
        await self.redis.aclose()
