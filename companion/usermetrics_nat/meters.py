"""Meters of a per-user workflow (async, no NAT): its latency histogram and its semaphore's queue.

``MeteredSemaphore`` wraps a per-user semaphore (an ``asyncio.Semaphore``, or a ``nullcontext``
when concurrency is not limited) and counts, in its ``UserStats``, the requests waiting on it now
and the time spent waiting and running; whoever times the requests adds each to the histogram.
The companion puts them on NAT's own semaphores (``instrument``); usermetrics' in-process session
registry (``usermetrics.runtime``, the demo) uses the same meters.
"""

from __future__ import annotations

import time
from typing import Any

from .histogram import BUCKETS, bucket_of, sparse
from .report import MODEL_NAME_MAX, MODELS_MAX, OTHER_MODELS, ModelUsage, UserExtras

# A model's counts in ``UserStats.llm``, in order (``ModelUsage``'s fields after its name).
USAGE_FIELDS = ("calls", "prompt", "completion", "cached", "reasoning", "total")


class UserStats:
    """What the companion counts of one user's per-user workflow (one per builder: a new builder starts at zero)."""

    __slots__ = ("latency", "llm", "llm_calls", "max_concurrency", "queued", "run_ms", "tool_calls", "wait_ms")

    def __init__(self, max_concurrency: int) -> None:
        """Start counting; ``max_concurrency`` is the semaphore's size (0: none)."""
        self.latency = [0] * BUCKETS
        self.max_concurrency = max_concurrency
        self.queued = 0
        self.wait_ms = 0.0
        self.run_ms = 0.0
        # model -> [calls, prompt, completion, cached, reasoning, total tokens] (LLM_END steps), in first-seen order
        self.llm: dict[str, list[int]] = {}
        self.llm_calls = 0
        self.tool_calls = 0

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything ``extras()`` reads, to tell a user that changed from one that did not."""
        return (self.queued, self.wait_ms, self.run_ms, sum(self.latency), self.llm_calls, self.tool_calls)

    def extras(self) -> UserExtras:
        """The figures as they travel."""
        return UserExtras.model_construct(
            latency=[(i, n) for i, n in sparse(self.latency)],
            queued=self.queued,
            max_concurrency=self.max_concurrency,
            wait_ms=round(self.wait_ms, 3),
            run_ms=round(self.run_ms, 3),
            llm=[
                ModelUsage.model_construct(m=m, **dict(zip(USAGE_FIELDS, n, strict=True))) for m, n in self.llm.items()
            ],
            tool_calls=self.tool_calls,
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

    @property
    def running(self) -> int:
        """Requests holding it now."""
        return len(self._held)

    async def __aexit__(self, *exc: Any) -> Any:
        """Release it, counting the time it was held."""
        started = self._held.pop(0) if self._held else time.perf_counter()
        self.stats.run_ms += (time.perf_counter() - started) * 1000
        return await self.inner.__aexit__(*exc)


def record_latency(stats: UserStats, latency_ms: float) -> None:
    """Count one finished request of the user into its histogram."""
    stats.latency[bucket_of(latency_ms)] += 1


def record_llm(stats: UserStats, model: str | None, tokens: dict[str, int]) -> None:
    """Count one LLM call of the user's workflow that ended, with the tokens its client reported.

    ``tokens`` holds NAT's ``TokenUsageBaseModel`` fields (``prompt_tokens``...); a call without
    them counts as a call with none, one without ``total_tokens`` as prompt + completion. Past
    ``MODELS_MAX`` models, further ones count together.
    """
    name = (model or "(unnamed)")[:MODEL_NAME_MAX]
    counts = stats.llm.get(name)
    if counts is None:
        if len(stats.llm) >= MODELS_MAX:
            name = OTHER_MODELS
        counts = stats.llm.setdefault(name, [0] * len(USAGE_FIELDS))
    counts[0] += 1
    values = [max(0, int(tokens.get(f"{field}_tokens", 0) or 0)) for field in USAGE_FIELDS[1:]]
    if not values[-1]:
        # A client that left the total out (NAT's default is 0): prompt + completion, as NAT's own relay
        # telemetry bridge counts it. Else its tokens read as none: 0 in the list, and "$0.00", not "no price".
        values[-1] = values[0] + values[1]
    for n, value in enumerate(values, start=1):
        counts[n] += value
    stats.llm_calls += 1


def record_tool(stats: UserStats) -> None:
    """Count one tool call of the user's workflow that ended."""
    stats.tool_calls += 1
