"""In-process per-user session registry with NAT's SessionManager contract (async, no Django).

``SessionManager`` keeps one ``PerUserBuilder`` per user id in ``_per_user_builders`` under the
global ``_per_user_builders_lock``, exactly the private contract that NAT's collector (and ours)
reads. ``async with manager.session(user_id)`` counts the reference, times the request, counts
an error when the block raises, and stamps ``last_activity``; a periodic cleanup evicts users
idle longer than the timeout with no references and closes their exit stacks, like NAT does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from usermetrics_nat.meters import MeteredSemaphore, UserStats, record_latency

from usermetrics.clock import utcnow

logger = logging.getLogger(__name__)


class PerUserBuilder:
    """A user's workflow builder: functions, function groups and an exit stack of resources."""

    def __init__(self, user_id: str) -> None:
        """Create an empty builder for ``user_id``."""
        self.user_id = user_id
        self._per_user_functions: dict[str, Any] = {}
        self._per_user_function_groups: dict[str, Any] = {}
        self._exit_stack = AsyncExitStack()
        self.closed = False

    def add_function(self, name: str, function: Any) -> None:
        """Register a per-user function."""
        self._per_user_functions[name] = function

    def add_function_group(self, name: str, group: Any) -> None:
        """Register a per-user function group."""
        self._per_user_function_groups[name] = group

    def push_resource(self, close: Callable[[], Awaitable[None]]) -> None:
        """Hold a resource until the builder closes; ``close`` runs on eviction or shutdown."""
        self._exit_stack.push_async_callback(close)

    async def __aenter__(self) -> PerUserBuilder:
        """Enter the builder (NAT's builders are async context managers too)."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close every resource on the exit stack."""
        self.closed = True
        await self._exit_stack.aclose()


BuilderFactory = Callable[[str], Awaitable[PerUserBuilder]]


async def default_builder_factory(user_id: str) -> PerUserBuilder:
    """Build an empty builder for a user."""
    return PerUserBuilder(user_id)


@dataclass(eq=False)
class PerUserBuilderInfo:
    """A user's builder with the activity and request counters that NAT's collector reads."""

    builder: Any
    created_at: datetime = field(default_factory=utcnow)
    last_activity: datetime = field(default_factory=utcnow)
    ref_count: int = 0
    total_requests: int = 0
    error_count: int = 0
    total_latency_ms: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # NAT's per-user semaphore (``max_concurrency`` requests run at once, the others wait), metered
    # as the NAT companion meters NAT's (usermetrics_nat.meters): queue, wait and run times, latency.
    semaphore: MeteredSemaphore | None = None

    def record_request(self, latency_ms: float, success: bool) -> None:
        """Count one finished request with its latency and outcome."""
        self.total_requests += 1
        self.total_latency_ms += latency_ms
        if not success:
            self.error_count += 1


class SessionManager:
    """Per-user builders with NAT's private contract, request accounting and idle cleanup."""

    def __init__(
        self,
        *,
        per_user_workflow_timeout: timedelta = timedelta(minutes=30),
        per_user_workflow_cleanup_interval: timedelta = timedelta(minutes=5),
        builder_factory: BuilderFactory = default_builder_factory,
        clock: Callable[[], datetime] = utcnow,
        max_concurrency: int = 8,
    ) -> None:
        """Configure eviction like NAT's ``general.per_user_workflow_*`` settings, and each user's
        concurrency like NAT's ``max_concurrency`` (0: unlimited)."""
        self._per_user_builders: dict[str, PerUserBuilderInfo] = {}
        self._per_user_builders_lock = asyncio.Lock()
        self._per_user_session_timeout = per_user_workflow_timeout
        self._per_user_session_cleanup_interval = per_user_workflow_cleanup_interval
        self._builder_factory = builder_factory
        self._clock = clock
        self._max_concurrency = max(0, max_concurrency)
        self._cleanup_task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def per_user_workflow_timeout(self) -> timedelta:
        """How long an idle user without references is kept."""
        return self._per_user_session_timeout

    def start(self) -> None:
        """Start the periodic cleanup on the running loop (idempotent)."""
        if self._closed:
            raise RuntimeError("SessionManager is closed")
        if self._cleanup_task is None or self._cleanup_task.done():
            self._cleanup_task = asyncio.get_running_loop().create_task(
                self._run_periodic_cleanup(), name="usermetrics-session-cleanup"
            )

    async def _run_periodic_cleanup(self) -> None:
        interval = self._per_user_session_cleanup_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.cleanup_idle()
            except Exception:
                # A failing cleanup must not stop later ones.
                logger.exception("Error during periodic cleanup of per-user builders")

    async def _get_or_create(self, user_id: str) -> PerUserBuilderInfo:
        async with self._per_user_builders_lock:
            info = self._per_user_builders.get(user_id)
            if info is None:
                builder = await self._builder_factory(user_id)
                now = self._clock()
                limit = self._max_concurrency
                semaphore = MeteredSemaphore(
                    asyncio.Semaphore(limit) if limit else contextlib.nullcontext(), UserStats(limit)
                )
                info = PerUserBuilderInfo(builder=builder, created_at=now, last_activity=now, semaphore=semaphore)
                self._per_user_builders[user_id] = info
                logger.debug("Created per-user builder for %s (%d users)", user_id, len(self._per_user_builders))
            else:
                info.last_activity = self._clock()
            return info

    @asynccontextmanager
    async def session(self, user_id: str) -> AsyncIterator[PerUserBuilder]:
        """Run one request as ``user_id``: count the reference, wait for the user's semaphore as NAT does,
        time it, count an error if it raises."""
        if not user_id:
            raise ValueError("user_id is required for a per-user session")
        if self._closed:
            raise RuntimeError("SessionManager is closed")
        info = await self._get_or_create(user_id)
        async with info.lock:
            info.ref_count += 1
        started = time.perf_counter()
        success = True
        try:
            async with info.semaphore or contextlib.nullcontext():
                yield info.builder
        except Exception:
            # Like NAT: a failed request is one that raised; a cancelled one is not an error.
            success = False
            raise
        finally:
            latency_ms = (time.perf_counter() - started) * 1000
            async with info.lock:
                info.ref_count -= 1
                info.last_activity = self._clock()
                info.record_request(latency_ms, success)
            if info.semaphore is not None:
                record_latency(info.semaphore.stats, latency_ms)

    def stats_of(self, user_id: str | None) -> UserStats | None:
        """The user's meters while its per-user builder lives (as the NAT companion's session manager has)."""
        info = self._per_user_builders.get(user_id) if user_id else None
        return info.semaphore.stats if info is not None and info.semaphore is not None else None

    async def cleanup_idle(self) -> int:
        """Evict users idle longer than the timeout with no references; close their exit stacks."""
        threshold = self._clock() - self._per_user_session_timeout
        evicted: list[tuple[str, PerUserBuilderInfo]] = []
        async with self._per_user_builders_lock:
            for user_id, info in list(self._per_user_builders.items()):
                if info.ref_count == 0 and info.last_activity < threshold:
                    evicted.append((user_id, info))
                    del self._per_user_builders[user_id]
        # Closing can be slow (network resources): do it outside the global lock, as NAT does.
        for user_id, info in evicted:
            try:
                await info.builder.__aexit__(None, None, None)
            except Exception:
                logger.exception("Error closing per-user builder for user %s", user_id)
        if evicted:
            logger.info("Evicted %d idle per-user builders (%d remain)", len(evicted), len(self._per_user_builders))
        return len(evicted)

    async def aclose(self) -> None:
        """Stop the cleanup task and close every user's builder."""
        self._closed = True
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            try:
                await self._cleanup_task
            except asyncio.CancelledError:
                pass
            self._cleanup_task = None
        async with self._per_user_builders_lock:
            infos = list(self._per_user_builders.items())
            self._per_user_builders.clear()
        for user_id, info in infos:
            try:
                await info.builder.__aexit__(None, None, None)
            except Exception:
                logger.exception("Error closing per-user builder for user %s", user_id)
