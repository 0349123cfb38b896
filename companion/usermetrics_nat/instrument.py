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

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from nat.builder.context import Context
from nat.data_models.intermediate_step import IntermediateStep, IntermediateStepType
from nat.runtime.session import SessionManager
from starlette.exceptions import HTTPException

from .commands import Holds
from .meters import MeteredSemaphore, UserStats, record_latency, record_llm, record_tool
from .report import utc_now

logger = logging.getLogger("usermetrics_nat")

# The user whose per-user builder this request took and has not referenced yet (NAT raises the
# builder's ref_count a step later, in its session()).
_starting_user: ContextVar[str | None] = ContextVar("usermetrics_starting_user", default=None)


class CompanionSessionManager(SessionManager):
    """NAT's ``SessionManager``, its per-user semaphores metered and its per-user requests timed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """NAT's session manager, with no holds yet (the worker gives all its endpoints one ``Holds``)."""
        super().__init__(*args, **kwargs)
        self.holds = Holds()
        self._starting: dict[str, int] = {}  # user -> requests between the builder's lookup and its reference

    async def _get_or_create_per_user_builder(self, user_id: str) -> tuple[Any, Any]:
        """NAT's builder lookup, after the user's hold (429); a new builder's semaphore is wrapped once.

        From here until NAT has raised the builder's ``ref_count`` the request is "starting":
        counted, so that an eviction never ends a workflow a request is about to run on.
        """
        hold = self.holds.get(user_id)
        if hold is not None:
            left = hold.seconds_left(utc_now())
            raise HTTPException(
                status_code=429,
                detail=(
                    f"This user's requests are held for {left:.0f} more seconds"
                    f" (until {hold.until.isoformat()}, by {hold.by or 'an operator'}"
                    f"{': ' + hold.reason if hold.reason else ''})."
                ),
                headers={"Retry-After": str(max(1, math.ceil(left)))},
            )
        self._starting[user_id] = self._starting.get(user_id, 0) + 1
        _starting_user.set(user_id)
        try:
            found = await super()._get_or_create_per_user_builder(user_id)
        except BaseException:
            self._started(user_id)
            raise
        info = self._per_user_builders.get(user_id)
        if info is not None and not isinstance(info.semaphore, MeteredSemaphore):
            info.semaphore = MeteredSemaphore(info.semaphore, UserStats(max(0, self._max_concurrency)))
        return found

    def _started(self, user_id: str | None) -> None:
        """A starting request of ``user_id`` holds a reference now (or failed): no longer starting."""
        _starting_user.set(None)
        if user_id is None or user_id not in self._starting:
            return
        self._starting[user_id] -= 1
        if self._starting[user_id] <= 0:
            del self._starting[user_id]

    @asynccontextmanager
    async def session(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """NAT's session; a per-user workflow's request is timed into its user's histogram."""
        try:
            async with super().session(*args, **kwargs) as session:
                self._started(_starting_user.get())
                started = time.perf_counter()
                if self._is_workflow_per_user:
                    session.run = _counting_steps(session.run, lambda: self.stats_of(session.user_id))
                try:
                    yield session
                finally:
                    stats = self.stats_of(session.user_id) if self._is_workflow_per_user else None
                    if stats is not None:
                        record_latency(stats, (time.perf_counter() - started) * 1000)
        finally:
            self._started(_starting_user.get())  # NAT failed between the lookup and the reference

    async def evict(self, user_id: str) -> tuple[str, str, int]:
        """End the user's per-user workflow here as NAT's idle clean-up does; (status, message, in flight).

        Refused while any request of the user runs, waits on its semaphore or is starting (a
        streamed answer runs after NAT's session has ended: the semaphore still counts it).
        """
        async with self._per_user_builders_lock:
            info = self._per_user_builders.get(user_id)
            if info is None:
                return "absent", "no per-user workflow of this user here", 0
            semaphore = info.semaphore
            running = semaphore.running if isinstance(semaphore, MeteredSemaphore) else 0
            queued = semaphore.stats.queued if isinstance(semaphore, MeteredSemaphore) else 0
            # NAT's ref_count counts the requests inside its session (queued ones too); a streamed
            # answer runs after its session ended, so the semaphore's holders and waiters count too.
            busy = max(info.ref_count, running + queued) + self._starting.get(user_id, 0)
            if busy:
                return "refused", f"{busy} request(s) of this user run here; evict when none does", busy
            del self._per_user_builders[user_id]
        try:
            await info.builder.__aexit__(None, None, None)
        except Exception:
            logger.exception("usermetrics companion: cleaning up the evicted workflow of user %s failed", user_id)
        logger.info("usermetrics companion: evicted the per-user workflow of user=%s", user_id)
        return "done", "evicted", 0

    def stats_of(self, user_id: str | None) -> UserStats | None:
        """The user's figures while its per-user builder lives (None otherwise)."""
        info = self._per_user_builders.get(user_id) if user_id else None
        semaphore = getattr(info, "semaphore", None)
        return semaphore.stats if isinstance(semaphore, MeteredSemaphore) else None


def _counting_steps(run: Callable[..., Any], stats_of: Callable[[], UserStats | None]) -> Callable[..., Any]:
    """``Session.run``, listening to the run's event stream for the user's LLM and tool calls.

    NAT's runner sets a new event stream as it starts, so the subscription is taken once the
    runner is entered, and dropped when the run ends.
    """

    @asynccontextmanager
    async def counted(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with run(*args, **kwargs) as runner:
            subscription = Context.get().intermediate_step_manager.subscribe(_on_step(stats_of))
            try:
                yield runner
            finally:
                subscription.unsubscribe()

    return counted


def _on_step(stats_of: Callable[[], UserStats | None]) -> Callable[[IntermediateStep], None]:
    def on_next(step: IntermediateStep) -> None:
        try:
            kind = step.payload.event_type
            if kind not in _COUNTED:
                return
            stats = stats_of()
            if stats is None:
                return
            if kind == IntermediateStepType.LLM_END:
                usage = step.payload.usage_info
                tokens = usage.token_usage.model_dump() if usage is not None else {}
                record_llm(stats, step.payload.name, tokens)
            else:
                record_tool(stats)
        except Exception:  # a step we cannot read never disturbs NAT's run
            logger.exception("usermetrics companion: an intermediate step could not be counted")

    return on_next


_COUNTED = frozenset({IntermediateStepType.LLM_END, IntermediateStepType.TOOL_END})
