"""Service layer: the only door to the sources (async).

One ``MonitorService`` per process refreshes every source at once, each with a timeout; callers
that arrive while a refresh runs share it. The last good answer of each source is kept with its
health, all timestamps become timezone-aware UTC, and users are merged by ``user_id`` into one
``Snapshot``. Views, the API, consumers and commands use the functions at the bottom.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property
from typing import Any, Literal

from usermetrics.metrics import (
    PerUserMemoryMetrics,
    PerUserMonitorResponse,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
)
from usermetrics.sources import Source

logger = logging.getLogger(__name__)

VERSION = "0.1.0"

HealthState = Literal["ok", "stale", "down"]


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


@dataclass
class SourceHealth:
    """What the service knows about one source."""

    name: str
    kind: str
    # ok: the last refresh succeeded and its users are live.
    # stale: the last refresh failed, but it has answered before and its failures began less
    #   than ``down_after`` seconds ago (a blip): its last good users are shown, marked stale.
    # down: it has never answered, has been failing for ``down_after`` seconds or more, or said
    #   it cannot answer at all (NAT without per-user monitoring); its last good users, if any,
    #   are still shown, marked stale.
    state: HealthState = "down"
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    # Start of the current run of failures (None while the source answers).
    failing_since: datetime | None = None
    last_duration_ms: float | None = None
    # Users of this source in the snapshot: live when ok, the kept last good ones otherwise.
    users: int = 0
    url: str | None = None
    # The source's per_user_workflow_timeout in seconds when known (for "evicted in N min").
    per_user_workflow_timeout: float | None = None

    @property
    def users_stale(self) -> bool:
        """Whether this source's users are kept from an earlier refresh rather than live."""
        return self.state != "ok"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "last_success": _iso(self.last_success),
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "failing_since": _iso(self.failing_since),
            "last_duration_ms": self.last_duration_ms,
            "users": self.users,
            "users_stale": self.users_stale,
            "url": self.url,
            "per_user_workflow_timeout": self.per_user_workflow_timeout,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class _SourceState:
    source: Source
    health: SourceHealth
    last_good: list[PerUserResourceUsage] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Every user of every source at one instant, merged by ``user_id``."""

    timestamp: datetime
    seq: int
    users: list[PerUserResourceUsage]
    by_id: dict[str, PerUserResourceUsage]
    # user_id -> names of the sources that reported it, in source order.
    origins: dict[str, tuple[str, ...]]
    # user_id -> (source name, that source's own record) when more than one record was merged.
    parts: dict[str, list[tuple[str, PerUserResourceUsage]]]
    sources: list[SourceHealth]

    @property
    def stale_sources(self) -> list[str]:
        """Names of sources whose users are the last good ones, not fresh."""
        return [s.name for s in self.sources if s.state != "ok"]

    @cached_property
    def health_by_name(self) -> dict[str, SourceHealth]:
        """Each source's health at this instant, by source name."""
        return {s.name: s for s in self.sources}

    def user_is_stale(self, user_id: str) -> bool:
        """Whether any of the user's numbers come from a source that did not answer this time."""
        health = self.health_by_name
        return any(health[name].state != "ok" for name in self.origins.get(user_id, ()))

    def user_parts(self, user_id: str) -> list[tuple[str, PerUserResourceUsage]]:
        """The user's records per source (one entry when one source reported it once); [] when unknown."""
        if user_id in self.parts:
            return self.parts[user_id]
        usage = self.by_id.get(user_id)
        return [] if usage is None else [(self.origins[user_id][0], usage)]

    def evicted_at(self, user_id: str) -> datetime | None:
        """When the user's workflows are due to be evicted for idleness (at the latest), if known.

        An idle record disappears from its source ``per_user_workflow_timeout`` after its last
        activity (NAT checks every ``per_user_workflow_cleanup_interval``, so it may linger up to
        that much longer). None while any record is in flight or a source's timeout is unknown.
        """
        health = self.health_by_name
        due: list[datetime] = []
        for name, usage in self.user_parts(user_id):
            timeout = health[name].per_user_workflow_timeout
            if usage.session.ref_count > 0 or timeout is None:
                return None
            due.append(usage.session.last_activity + timedelta(seconds=timeout))
        return max(due) if due else None

    def response(self, users: list[PerUserResourceUsage] | None = None) -> PerUserMonitorResponse:
        """A NAT-shaped response of ``users`` (default: all), stamped with the snapshot time."""
        chosen = self.users if users is None else users
        # The users were validated when they entered the service; skip validating them again.
        return PerUserMonitorResponse.model_construct(
            timestamp=self.timestamp, total_active_users=len(chosen), users=chosen
        )

    @cached_property
    def json_all(self) -> bytes:
        """The whole response as JSON, serialized once per snapshot."""
        return self.response().model_dump_json().encode()


Listener = Callable[[Snapshot], Awaitable[None]]


class MonitorService:
    """Refreshes the sources, keeps their last good data and health, and merges users."""

    def __init__(
        self, sources: Sequence[Source], *, interval: float = 2.0, timeout: float = 5.0, down_after: float = 30.0
    ) -> None:
        """Serve ``sources``; refresh every ``interval`` s; give each source ``timeout`` s (or its own
        ``timeout`` attribute); call a failing source down after ``down_after`` s of failures."""
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"Source names must be unique, got {names}")
        self.interval = interval
        self.timeout = timeout
        self.down_after = down_after
        self._states = [_SourceState(s, _initial_health(s)) for s in sources]
        self._seq = 0
        self._snapshot: Snapshot | None = None
        self._inflight: asyncio.Task[Snapshot] | None = None
        self._listeners: list[Listener] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._started = False
        self.refresh_count = 0

    @property
    def sources(self) -> list[Source]:
        """The configured sources, in order."""
        return [st.source for st in self._states]

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(snapshot)`` after every refresh (the feed's producer uses this)."""
        self._listeners.append(listener)

    async def refresh(self) -> Snapshot:
        """Refresh every source now; callers that arrive meanwhile share this one refresh."""
        loop = asyncio.get_running_loop()
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._refresh_once(), name="usermetrics-refresh")
            self._inflight = task
        # Shielded: a caller that gives up must not cancel the refresh the others wait for.
        return await asyncio.shield(task)

    async def snapshot(self, *, max_age: float | None = None) -> Snapshot:
        """The latest snapshot if it is younger than ``max_age`` (default: the interval), else a fresh one."""
        current = self._snapshot
        limit = self.interval if max_age is None else max_age
        if current is not None and (utcnow() - current.timestamp).total_seconds() < limit:
            return current
        return await self.refresh()

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The latest snapshot without refreshing (None before the first refresh)."""
        return self._snapshot

    def source_health(self) -> list[SourceHealth]:
        """Each source's health as of the last refresh."""
        return [st.health for st in self._states]

    async def _refresh_once(self) -> Snapshot:
        results = await asyncio.gather(*(self._fetch(st) for st in self._states))
        del results  # each _fetch stored its own outcome
        self._seq += 1
        snapshot = _merge(self._states, seq=self._seq, timestamp=utcnow())
        self._snapshot = snapshot
        self.refresh_count += 1
        for listener in list(self._listeners):
            try:
                await listener(snapshot)
            except Exception:
                logger.exception("Snapshot listener %r failed", listener)
        return snapshot

    async def _fetch(self, state: _SourceState) -> None:
        health = state.health
        started = time.perf_counter()
        timeout = getattr(state.source, "timeout", None) or self.timeout
        try:
            response = await asyncio.wait_for(state.source.fetch(), timeout=timeout)
            users = _to_utc(response.users, getattr(state.source, "timezone", None))
        except Exception as exc:  # one failing source never blocks or blanks the others
            if isinstance(exc, TimeoutError):
                message = f"timed out after {timeout:g} s"
            else:
                message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            logger.warning("Source %s failed: %s", health.name, message)
            now = utcnow()
            health.last_error = message
            health.last_error_at = now
            if health.failing_since is None:
                health.failing_since = now
            # A source that says it cannot answer at all (``down_at_once``) is down, not a blip.
            blip = (now - health.failing_since).total_seconds() < self.down_after
            recent = health.last_success is not None and blip and not getattr(exc, "down_at_once", False)
            health.state = "stale" if recent else "down"
        else:
            state.last_good = users
            health.state = "ok"
            health.last_success = utcnow()
            health.failing_since = None
            health.users = len(users)
        health.last_duration_ms = round((time.perf_counter() - started) * 1000, 2)

    async def start(self) -> None:
        """Start the sources' own work and the periodic refresh on the running loop (idempotent)."""
        if self._started:
            return
        self._started = True
        for source in self.sources:
            start = getattr(source, "start", None)
            if callable(start):
                await start()
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="usermetrics-producer")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                await self.refresh()
            except Exception:
                logger.exception("Refresh failed")
            # Fixed rate: a slow refresh does not stretch the interval; a very slow one skips ticks.
            next_at += self.interval
            now = loop.time()
            if next_at < now:
                next_at = now
            await asyncio.sleep(next_at - now)

    async def aclose(self) -> None:
        """Stop refreshing and close the sources."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
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


def _to_utc(users: list[PerUserResourceUsage], zone: tzinfo | None) -> list[PerUserResourceUsage]:
    """Make every session timestamp aware UTC; naive ones are in ``zone`` (None: this host's zone)."""
    out: list[PerUserResourceUsage] = []
    for usage in users:
        session = usage.session
        created, last = session.created_at, session.last_activity
        if created.utcoffset() == _ZERO and last.utcoffset() == _ZERO:
            out.append(usage)  # the common case costs no copy
            continue
        fixed = session.model_copy(
            update={"created_at": _aware_utc(created, zone), "last_activity": _aware_utc(last, zone)}
        )
        out.append(usage.model_copy(update={"session": fixed}))
    return out


_ZERO = timedelta(0)


def _aware_utc(value: datetime, zone: tzinfo | None) -> datetime:
    if value.tzinfo is None:
        # astimezone() on a naive datetime reads it as this host's local time.
        value = value.replace(tzinfo=zone) if zone is not None else value.astimezone()
    return value.astimezone(UTC)


def merge_usages(user_id: str, records: Sequence[PerUserResourceUsage]) -> PerUserResourceUsage:
    """One user's records from several processes or endpoints, merged into one.

    Counts are summed, average latency is weighted by requests, ``created_at`` is the earliest,
    ``last_activity`` the latest, and ``is_active`` follows the summed references.
    """
    if len(records) == 1:
        return records[0]
    total = sum(r.requests.total_requests for r in records)
    weighted = sum(r.requests.avg_latency_ms * r.requests.total_requests for r in records)
    ref_count = sum(r.session.ref_count for r in records)
    return PerUserResourceUsage.model_construct(
        user_id=user_id,
        session=PerUserSessionMetrics.model_construct(
            created_at=min(r.session.created_at for r in records),
            last_activity=max(r.session.last_activity for r in records),
            ref_count=ref_count,
            is_active=ref_count > 0,
        ),
        requests=PerUserRequestMetrics.model_construct(
            total_requests=total,
            active_requests=sum(r.requests.active_requests for r in records),
            avg_latency_ms=round(weighted / total, 2) if total else 0.0,
            error_count=sum(r.requests.error_count for r in records),
        ),
        memory=PerUserMemoryMetrics.model_construct(
            per_user_functions_count=sum(r.memory.per_user_functions_count for r in records),
            per_user_function_groups_count=sum(r.memory.per_user_function_groups_count for r in records),
            exit_stack_size=sum(r.memory.exit_stack_size for r in records),
        ),
    )


def _merge(states: Sequence[_SourceState], *, seq: int, timestamp: datetime) -> Snapshot:
    grouped: dict[str, list[tuple[str, PerUserResourceUsage]]] = {}
    for st in states:
        name = st.health.name
        for usage in st.last_good:
            entry = grouped.get(usage.user_id)
            if entry is None:
                grouped[usage.user_id] = [(name, usage)]
            else:
                entry.append((name, usage))
    users: list[PerUserResourceUsage] = []
    by_id: dict[str, PerUserResourceUsage] = {}
    origins: dict[str, tuple[str, ...]] = {}
    parts: dict[str, list[tuple[str, PerUserResourceUsage]]] = {}
    for user_id, entries in grouped.items():
        if len(entries) == 1:
            name, merged = entries[0]
            origins[user_id] = (name,)
        else:
            merged = merge_usages(user_id, [usage for _, usage in entries])
            origins[user_id] = tuple(dict.fromkeys(name for name, _ in entries))
            parts[user_id] = entries
        users.append(merged)
        by_id[user_id] = merged
    health = [SourceHealth(**vars(st.health)) for st in states]  # frozen copies for this instant
    return Snapshot(
        timestamp=timestamp, seq=seq, users=users, by_id=by_id, origins=origins, parts=parts, sources=health
    )


# --- the process-wide service -------------------------------------------------------------------

_service: MonitorService | None = None


def build_service_from_config(*, record: bool = True) -> MonitorService:
    """Build the service that the settings describe: the NAT sources, and the demo when enabled.

    ``record``: install the process's history recorder on it when the history is on (a one-off
    check passes False, so that it neither writes history nor replaces the process's recorder).
    """
    from usermetrics.conf import get_config, nat_sources_from_config
    from usermetrics.demo import demo_session_manager
    from usermetrics.sources import LocalSource

    config = get_config()
    sources: list[Source] = list(nat_sources_from_config())
    demo = config["DEMO"]
    # ENABLED None means "auto": the demo runs only when no NAT server is configured.
    if demo["ENABLED"] or (demo["ENABLED"] is None and not sources):
        manager, workload = demo_session_manager(
            users=int(demo["USERS"]),
            seed=int(demo["SEED"]),
            timeout_seconds=float(demo["TIMEOUT"]),
            cleanup_seconds=float(demo["CLEANUP_INTERVAL"]),
            extra_users=[str(u) for u in demo["EXTRA_USERS"]],
        )
        sources.append(LocalSource("demo", manager, workload=workload))
    service = MonitorService(
        sources,
        interval=float(config["REFRESH_INTERVAL"]),
        timeout=float(config["SOURCE_TIMEOUT"]),
        down_after=float(config["SOURCE_DOWN_AFTER"]),
    )
    if record and config["HISTORY"]["ENABLED"]:
        from usermetrics.history import recorder_install

        recorder_install(service)  # records every refresh into the history store
    return service


def get_service() -> MonitorService:
    """The process's service, built from the settings on first use."""
    global _service
    if _service is None:
        _service = build_service_from_config()
    return _service


def set_service(service: MonitorService | None) -> MonitorService | None:
    """Install ``service`` as the process's service (None: rebuild from settings); return the old one."""
    global _service
    previous, _service = _service, service
    return previous


async def service_start() -> None:
    """Start the process's service: sources' own work and the periodic refresh."""
    await get_service().start()


async def snapshot_get(*, max_age: float | None = None) -> Snapshot:
    """The current snapshot, refreshed when older than the refresh interval."""
    return await get_service().snapshot(max_age=max_age)


async def user_metrics_list(*, user_id: str | None = None) -> PerUserMonitorResponse:
    """Every user as a NAT-shaped response; with ``user_id``, that user only (empty when unknown)."""
    snapshot = await snapshot_get()
    if user_id is None:
        return snapshot.response()
    usage = snapshot.by_id.get(user_id)
    return snapshot.response([usage] if usage is not None else [])


async def user_metrics_get(*, user_id: str) -> PerUserResourceUsage | None:
    """One user's merged metrics, or None when no source reports it."""
    snapshot = await snapshot_get()
    return snapshot.by_id.get(user_id)


async def source_status() -> dict[str, Any]:
    """Health of every source, the last refresh time, the refresh interval and the version."""
    service = get_service()
    snapshot = await service.snapshot()
    return {
        "version": VERSION,
        "refresh_interval": service.interval,
        "source_timeout": service.timeout,
        "source_down_after": service.down_after,
        "last_refresh": _iso(snapshot.timestamp),
        "seq": snapshot.seq,
        "total_users": len(snapshot.users),
        "sources": [h.as_dict() for h in snapshot.sources],
    }
