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

from .meters import MeteredSemaphore, UserStats, record_latency


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
                    record_latency(stats, (time.perf_counter() - started) * 1000)

    def stats_of(self, user_id: str | None) -> UserStats | None:
        """The user's figures while its per-user builder lives (None otherwise)."""
        info = self._per_user_builders.get(user_id) if user_id else None
        semaphore = getattr(info, "semaphore", None)
        return semaphore.stats if isinstance(semaphore, MeteredSemaphore) else None
