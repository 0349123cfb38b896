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
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from nat.builder.context import Context
from nat.data_models.intermediate_step import IntermediateStep, IntermediateStepType
from nat.runtime.session import SessionManager

from .meters import MeteredSemaphore, UserStats, record_latency, record_llm, record_tool

logger = logging.getLogger("usermetrics_nat")


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
            if self._is_workflow_per_user:
                session.run = _counting_steps(session.run, lambda: self.stats_of(session.user_id))
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
