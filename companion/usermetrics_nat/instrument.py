"""Measuring inside NAT (async): each user's latency histogram and its semaphore's queue, on NAT's own objects.

``CompanionSessionManager`` is NAT's ``SessionManager`` with two additions and nothing else
changed: the semaphore of each per-user builder is wrapped in a ``MeteredSemaphore`` (requests
waiting on it now, time spent waiting and running), and each request of a per-user workflow is
timed into the user's latency histogram, over the same span as NAT's own ``avg_latency_ms``
(from the per-user builder's reference being taken to the request's end). NAT takes the
semaphore inside ``Session.run``, after raising ``ref_count``, so requests past ``max_concurrency``
wait there: that wait is what ``queued`` counts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from nat.runtime.session import SessionManager

from .histogram import BUCKETS, bucket_of, sparse
from .report import UserExtras


class UserStats:
    """What the companion counts of one user's per-user workflow (one per builder: a new builder starts at zero)."""

    __slots__ = ("latency", "max_concurrency", "queued", "run_ms", "wait_ms")

    def __init__(self, max_concurrency: int) -> None:
        """Start counting; ``max_concurrency`` is the semaphore's size (0: none)."""
        self.latency = [0] * BUCKETS
        self.max_concurrency = max_concurrency
        self.queued = 0
        self.wait_ms = 0.0
        self.run_ms = 0.0

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything ``extras()`` reads, to tell a user that changed from one that did not."""
        return (self.queued, self.wait_ms, self.run_ms, sum(self.latency))

    def extras(self) -> UserExtras:
        """The figures as they travel."""
        return UserExtras.model_construct(
            latency=[(i, n) for i, n in sparse(self.latency)],
            queued=self.queued,
            max_concurrency=self.max_concurrency,
            wait_ms=round(self.wait_ms, 3),
            run_ms=round(self.run_ms, 3),
        )


class MeteredSemaphore:
    """NAT's per-user semaphore (or its ``nullcontext``), counting who waits on it and for how long."""

    def __init__(self, inner: Any, stats: UserStats) -> None:
        """Wrap ``inner`` (what ``async with`` takes), counting into ``stats``."""
        self.inner = inner
        self.stats = stats
        self._held: list[float] = []  # start times of the current holders

    async def __aenter__(self) -> Any:
        """Wait for the semaphore as NAT would, counting the wait."""
        stats = self.stats
        started = time.perf_counter()
        stats.queued += 1
        try:
            entered = await self.inner.__aenter__()
        finally:
            stats.queued -= 1
        now = time.perf_counter()
        stats.wait_ms += (now - started) * 1000
        self._held.append(now)
        return entered

    async def __aexit__(self, *exc: Any) -> Any:
        """Release it, counting the time it was held."""
        started = self._held.pop(0) if self._held else time.perf_counter()
        self.stats.run_ms += (time.perf_counter() - started) * 1000
        return await self.inner.__aexit__(*exc)


class CompanionSessionManager(SessionManager):
    """NAT's ``SessionManager``, its per-user semaphores metered and its per-user requests timed."""

    async def _get_or_create_per_user_builder(self, user_id: str) -> tuple[Any, Any]:
        """NAT's builder lookup; a new builder's semaphore is wrapped once (its stats start with it)."""
        found = await super()._get_or_create_per_user_builder(user_id)
        info = self._per_user_builders.get(user_id)
        if info is not None and not isinstance(info.semaphore, MeteredSemaphore):
            info.semaphore = MeteredSemaphore(info.semaphore, UserStats(max(0, self._max_concurrency)))
        return found

    @asynccontextmanager
    async def session(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """NAT's session; a per-user workflow's request is timed into its user's histogram."""
        async with super().session(*args, **kwargs) as session:
            started = time.perf_counter()
            try:
                yield session
            finally:
                stats = self.stats_of(session.user_id) if self._is_workflow_per_user else None
                if stats is not None:
                    stats.latency[bucket_of((time.perf_counter() - started) * 1000)] += 1

    def stats_of(self, user_id: str | None) -> UserStats | None:
        """The user's figures while its per-user builder lives (None otherwise)."""
        info = self._per_user_builders.get(user_id) if user_id else None
        semaphore = getattr(info, "semaphore", None)
        return semaphore.stats if isinstance(semaphore, MeteredSemaphore) else None
