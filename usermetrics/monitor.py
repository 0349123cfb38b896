"""The monitor (async, no Django): refresh every source at once, keep their health, merge into snapshots.

One ``MonitorService`` refreshes every source with a timeout each; callers that arrive while a
refresh runs share it. The last good answer of each source is kept with its health, all
timestamps become timezone-aware UTC, and users are merged by ``user_id`` into one ``Snapshot``.
The producer (``usermetrics.publish.producer``) calls ``refresh`` at its own pace. The clock is
injected, so tests move time instead of sleeping to reach a threshold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from usermetrics.clock import Clock, to_utc, utcnow
from usermetrics.extras import Extras, extras_merged
from usermetrics.merging import ids_of, merge
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.snapshot import Snapshot, SourceHealth
from usermetrics.sources import Source

logger = logging.getLogger(__name__)


@dataclass
class _SourceState:
    source: Source
    health: SourceHealth
    last_good: list[PerUserResourceUsage] = field(default_factory=list)
    last_ids: list[str] = field(default_factory=list)  # the user ids of last_good, in order
    last_extras: Mapping[str, Extras] | None = None  # a companion stream's per-user extras, as last fetched


class MonitorService:
    """Refreshes the sources, keeps their last good data and health, and merges users."""

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        interval: float = 2.0,
        timeout: float = 5.0,
        down_after: float = 30.0,
        clock: Clock = utcnow,
    ) -> None:
        """Serve ``sources``; refresh every ``interval`` s; give each source ``timeout`` s (or its own
        ``timeout`` attribute); call a failing source down after ``down_after`` s of failures;
        read the time from ``clock``."""
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"Source names must be unique, got {names}")
        self.interval = interval
        self.timeout = timeout
        self.down_after = down_after
        self.clock = clock
        self._states = [_SourceState(s, _initial_health(s)) for s in sources]
        self._seq = 0
        self._snapshot: Snapshot | None = None
        self._inflight: asyncio.Task[Snapshot] | None = None
        self._started = False
        self.refresh_count = 0

    @property
    def sources(self) -> list[Source]:
        """The configured sources, in order."""
        return [st.source for st in self._states]

    def seq_from(self, seq: int) -> None:
        """Number the next refresh after ``seq`` (a producer taking over continues its predecessor's)."""
        self._seq = max(self._seq, seq)

    async def refresh(self) -> Snapshot:
        """Refresh every source now; callers that arrive meanwhile share this one refresh."""
        loop = asyncio.get_running_loop()
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._refresh_once(), name="usermetrics-refresh")
            self._inflight = task
        # Shielded: a caller that gives up must not cancel the refresh the others wait for.
        return await asyncio.shield(task)

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The latest snapshot without refreshing (None before the first refresh)."""
        return self._snapshot

    async def _refresh_once(self) -> Snapshot:
        await asyncio.gather(*(self._fetch(st) for st in self._states))  # each stores its own outcome
        self._seq += 1
        # In a thread: at a million users a merge is a second of work the loop (the lease's keeper,
        # Redis) need not wait for; nothing else touches the sources' state meanwhile.
        snapshot = await asyncio.to_thread(
            merge,
            [(st.health.name, st.last_good) for st in self._states],
            ids=[st.last_ids for st in self._states],
            seq=self._seq,
            timestamp=self.clock(),
            sources=[replace(st.health) for st in self._states],  # copies frozen at this instant
            extras=extras_merged([st.last_extras for st in self._states if st.last_extras]),
            previous=self._snapshot,  # most refreshes: the same users, a few records changed
        )
        self._snapshot = snapshot
        self.refresh_count += 1
        return snapshot

    async def _fetch(self, state: _SourceState) -> None:
        health = state.health
        started = time.perf_counter()
        timeout = getattr(state.source, "timeout", None) or self.timeout
        try:
            response = await asyncio.wait_for(state.source.fetch(), timeout=timeout)
            users = response.users
            if not getattr(state.source, "times_utc", False):  # a source that converts as it parses says so
                users = to_utc(users, getattr(state.source, "timezone", None))
        except Exception as exc:  # one failing source never blocks or blanks the others
            if isinstance(exc, TimeoutError):
                message = f"timed out after {timeout:g} s"
            else:
                message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            # A failure is said once at WARNING, and again only when it changes (not every refresh).
            level = logging.DEBUG if message == health.last_error and health.failing_since else logging.WARNING
            logger.log(level, "Source %s failed: %s", health.name, message)
            now = self.clock()
            health.last_error = message
            health.last_error_at = now
            if health.failing_since is None:
                health.failing_since = now
            # A source that says it cannot answer at all (``down_at_once``) is down, not a blip.
            blip = (now - health.failing_since).total_seconds() < self.down_after
            recent = health.last_success is not None and blip and not getattr(exc, "down_at_once", False)
            health.state = "stale" if recent else "down"
        else:
            state.last_ids = ids_of(users, state.last_good, state.last_ids)
            state.last_good = users
            extras = getattr(state.source, "extras", None)  # a companion stream's, read as of this fetch
            state.last_extras = extras() if callable(extras) else None
            workers = getattr(state.source, "workers_summary", None)
            if callable(workers):
                health.workers, health.skipped = workers(), state.source.skipped_by_kind()
            health.state = "ok"
            health.last_success = self.clock()
            health.failing_since = None
            health.users = len(users)
            health.last_body_bytes = getattr(state.source, "last_body_bytes", None)  # NAT sources only
        health.last_duration_ms = round((time.perf_counter() - started) * 1000, 2)

    async def start(self) -> None:
        """Start the sources' own work on the running loop, such as the demo's workload (idempotent)."""
        if self._started:
            return
        self._started = True
        for source in self.sources:
            start = getattr(source, "start", None)
            if callable(start):
                await start()

    async def aclose(self) -> None:
        """Close the sources."""
        for source in self.sources:
            aclose = getattr(source, "aclose", None)
            if callable(aclose):
                await aclose()
        self._started = False


def _initial_health(source: Source) -> SourceHealth:
    timeout = getattr(source, "per_user_workflow_timeout", None)
    return SourceHealth(
        name=source.name,
        kind=getattr(source, "kind", "?"),
        url=getattr(source, "url", None),
        per_user_workflow_timeout=timeout.total_seconds() if isinstance(timeout, timedelta) else None,
    )
