"""A user's extras (sync, no Django): what NAT companions say of it beyond NAT's record, merged over its workers.

A source that has them (a companion stream, ``nat_stream``) hands one ``Extras`` per user: its
latency histogram, its queue, its LLM calls and tokens per model and its tool calls. The snapshot
carries them, the board packs them as columns (and each user's histogram and per-model counts as
bytes), and the history records their histograms. Users of other sources have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usermetrics_nat.histogram import EMPTY, Counts, added, percentiles
from usermetrics_nat.meters import USAGE_FIELDS, UserStats

# One model's counts: calls, then prompt, completion, cached, reasoning and total tokens (``USAGE_FIELDS``).
Usage = tuple[int, ...]
# What each count is called in documents (the API, frames, exports): NAT's own token names.
USAGE_KEYS = ("calls", *(f"{field}_tokens" for field in USAGE_FIELDS[1:]))
NO_USAGE: Usage = (0,) * len(USAGE_FIELDS)


@dataclass(frozen=True)
class Extras:
    """What the companions say of a user beyond NAT's record, merged over its workers."""

    latency: Counts = EMPTY  # cumulative histogram (usermetrics_nat.histogram buckets)
    queued: int = 0  # requests waiting on the user's semaphores now
    max_concurrency: int = 0  # the semaphores' sizes, summed over running shares
    wait_ms: float = 0.0  # time spent waiting, summed
    run_ms: float = 0.0  # time spent running (holding a semaphore), summed
    workers: tuple[str, ...] = ()  # labels of the workers running it now
    llm: tuple[tuple[str, Usage], ...] = ()  # per model (in the order first counted): its LLM calls and tokens
    tool_calls: int = 0

    @property
    def llm_total(self) -> Usage:
        """Every model's counts added up (``USAGE_FIELDS``' order)."""
        return tuple(map(sum, zip(*(usage for _, usage in self.llm), strict=True))) if self.llm else NO_USAGE

    @property
    def percentiles(self) -> tuple[float | None, ...]:
        """p50, p95, p99 of every request counted (ms; None: none yet)."""
        return percentiles(self.latency)

    @property
    def saturated(self) -> bool:
        """Requests wait on the semaphore now (more in flight than ``max_concurrency``)."""
        return self.queued > 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the board's per-user document, the API, the exports)."""
        p50, p95, p99 = self.percentiles
        return {
            "latency": {
                "p50_ms": p50,
                "p95_ms": p95,
                "p99_ms": p99,
                "requests": sum(self.latency),
                "buckets": [[i, n] for i, n in enumerate(self.latency) if n],
            },
            "queue": {
                "queued": self.queued,
                "max_concurrency": self.max_concurrency,
                "wait_ms": round(self.wait_ms, 3),
                "run_ms": round(self.run_ms, 3),
            },
            "workers": list(self.workers),
            "llm": {
                **dict(zip(USAGE_KEYS, self.llm_total, strict=True)),
                "by_model": {model: dict(zip(USAGE_KEYS, usage, strict=True)) for model, usage in self.llm},
            },
            "tool_calls": self.tool_calls,
        }


def extras_from_meters(stats: UserStats) -> Extras:
    """A user's extras from the meters of one in-process session registry (no NAT workers)."""
    return Extras(
        latency=tuple(stats.latency),
        queued=stats.queued,
        max_concurrency=stats.max_concurrency,
        wait_ms=stats.wait_ms,
        run_ms=stats.run_ms,
        llm=tuple((model, tuple(counts)) for model, counts in stats.llm.items()),
        tool_calls=stats.tool_calls,
    )


def extras_merged(per_source: list[Mapping[str, Extras]]) -> Mapping[str, Extras]:
    """The extras of every source, a user's added up where several sources report it (one source: its own copy)."""
    if not per_source:
        return {}
    if len(per_source) == 1:
        return dict(per_source[0])  # a copy: the source updates its own in place at its next fetch
    merged: dict[str, Extras] = {}
    for extras in per_source:
        for user_id, x in extras.items():
            y = merged.get(user_id)
            merged[user_id] = x if y is None else extras_added(y, x)
    return merged


def extras_added(a: Extras, b: Extras) -> Extras:
    """Two sources' extras of one user, added."""
    return Extras(
        latency=added(a.latency, b.latency),
        queued=a.queued + b.queued,
        max_concurrency=a.max_concurrency + b.max_concurrency,
        wait_ms=a.wait_ms + b.wait_ms,
        run_ms=a.run_ms + b.run_ms,
        workers=tuple(sorted({*a.workers, *b.workers})),
        llm=llm_added(a.llm, b.llm),
        tool_calls=a.tool_calls + b.tool_calls,
    )


def llm_added(*per_model: tuple[tuple[str, Usage], ...]) -> tuple[tuple[str, Usage], ...]:
    """Several shares' per-model counts, added model by model (models in the order first seen)."""
    if len(per_model) == 1:
        return per_model[0]
    out: dict[str, Usage] = {}
    for pairs in per_model:
        for model, usage in pairs:
            before = out.get(model)
            out[model] = usage if before is None else tuple(map(int.__add__, before, usage))
    return tuple(out.items())
