"""Snapshots (sync, no Django): every user of every source at one instant, merged by user id.

One home for each rule the rest of the code reads off a snapshot: what "active" and "in flight"
mean, how several records of one user merge, the totals over all users (with the request-weighted
average latency), and when an idle user is due to be evicted.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from itertools import compress, count, repeat
from operator import add, mul
from typing import Any, Literal

from usermetrics.extras import Extras
from usermetrics.metrics import (
    PerUserMonitorResponse,
    PerUserResourceUsage,
)

HealthState = Literal["ok", "stale", "down"]


def is_active(usage: PerUserResourceUsage) -> bool:
    """Whether the user has a request in flight: NAT's own rule (``is_active = ref_count > 0``).

    Read from ``ref_count`` rather than the reported ``is_active`` so that a source whose two
    fields disagree is judged by the counter, the same way everywhere.
    """
    return usage.session.ref_count > 0


def in_flight(usage: PerUserResourceUsage) -> int:
    """How many of the user's requests are in flight (NAT reports ``active_requests = ref_count``)."""
    return usage.session.ref_count


def weighted_latency(records: Iterable[PerUserResourceUsage]) -> float:
    """The request-weighted mean of the records' average latencies, rounded like NAT (2 places)."""
    requests = 0
    weighted = 0.0
    for r in records:
        requests += r.requests.total_requests
        weighted += r.requests.avg_latency_ms * r.requests.total_requests
    return round(weighted / requests, 2) if requests else 0.0


def iso(value: datetime | None) -> str | None:
    """ISO 8601 of an aware time, or None."""
    return value.isoformat() if value is not None else None


@dataclass
class SourceHealth:
    """What the monitor knows about one source."""

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
    last_body_bytes: int | None = None  # size of the last good answer's body (NAT sources)
    # Users of this source in the snapshot: live when ok, the kept last good ones otherwise.
    users: int = 0
    url: str | None = None
    # The source's per_user_workflow_timeout in seconds when known (for "evicted in N min").
    per_user_workflow_timeout: float | None = None
    # A companion stream's NAT workers, running and recently ended (``Workers.summary``); None otherwise.
    workers: list[dict[str, Any]] | None = None
    # A companion stream's entries skipped (garbage, too large, another deployment), by kind.
    skipped: dict[str, int] | None = None

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
            "last_success": iso(self.last_success),
            "last_error": self.last_error,
            "last_error_at": iso(self.last_error_at),
            "failing_since": iso(self.failing_since),
            "last_duration_ms": self.last_duration_ms,
            "last_body_bytes": self.last_body_bytes,
            "users": self.users,
            "users_stale": self.users_stale,
            "url": self.url,
            "per_user_workflow_timeout": self.per_user_workflow_timeout,
            "workers": self.workers,
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceHealth:
        """The health ``as_dict`` wrote (as a board carries it to other processes)."""
        times = ("last_success", "last_error_at", "failing_since")
        fields = {k: v for k, v in data.items() if k != "users_stale"}
        for name in times:
            fields[name] = datetime.fromisoformat(fields[name]) if fields[name] else None
        return cls(**fields)

    def brief(self) -> dict[str, Any]:
        """The few fields that pages and frames show of a source."""
        data = self.as_dict()
        return {k: data[k] for k in ("name", "kind", "state", "users", "last_success", "last_error")}


@dataclass(frozen=True)
class Totals:
    """Totals over a set of users: the summary cards, the history's totals row, Prometheus."""

    users: int
    active: int
    in_flight: int
    requests: int
    errors: int
    avg_latency_ms: float  # weighted by requests, as in merging
    exit_stack: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def totals_of(
    *,
    ref_count: Sequence[int],
    total_requests: Sequence[int],
    avg_latency_ms: Sequence[float],
    error_count: Sequence[int],
    exit_stack_size: Sequence[int],
) -> Totals:
    """The totals of users given as columns (one sequence per field, the users in the same order).

    ``active`` counts ``ref_count > 0`` (``is_active``), ``in_flight`` sums ``ref_count``
    (``in_flight``), latency is weighted by requests (``weighted_latency``). Every pass runs in C:
    this runs over every user of every refresh.
    """
    requests = sum(total_requests)
    weighted = sum(map(mul, avg_latency_ms, total_requests))
    return Totals(
        users=len(ref_count),
        active=sum(map((0).__lt__, ref_count)),  # 0 < ref_count
        in_flight=sum(ref_count),
        requests=requests,
        errors=sum(error_count),
        avg_latency_ms=round(weighted / requests, 2) if requests else 0.0,
        exit_stack=sum(exit_stack_size),
    )


def totals(users: Sequence[PerUserResourceUsage]) -> Totals:
    """The totals of ``users`` (``totals_of`` their fields)."""
    sessions = [u.session for u in users]
    requests = [u.requests for u in users]
    return totals_of(
        ref_count=[s.ref_count for s in sessions],
        total_requests=[r.total_requests for r in requests],
        avg_latency_ms=[r.avg_latency_ms for r in requests],
        error_count=[r.error_count for r in requests],
        exit_stack_size=[u.memory.exit_stack_size for u in users],
    )


class SourcesHealth:
    """What a snapshot and a board say of their ``sources``: the one rule each of a stale source and a stale user."""

    sources: list[SourceHealth]

    @property
    def stale_sources(self) -> list[str]:
        """Names of the sources whose users are their last good data, not fresh."""
        return [s.name for s in self.sources if s.state != "ok"]

    @cached_property
    def health_by_name(self) -> dict[str, SourceHealth]:
        """Each source's health at this refresh, by name."""
        return {s.name: s for s in self.sources}

    def any_stale(self, names: Iterable[str]) -> bool:
        """Whether any of these sources (a user's origins) did not answer this time."""
        health = self.health_by_name
        return any(health[name].state != "ok" for name in names)


@dataclass(frozen=True, eq=False)
class Snapshot(SourcesHealth):
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
    # user_id -> what NAT companions say of it beyond its record (only users of companion streams).
    extras: Mapping[str, Extras] = field(default_factory=dict)
    # Each source's name, users and ids as merged, in order (the next merge compares its reports with them).
    reports: tuple[tuple[str, Sequence[PerUserResourceUsage], Sequence[str]], ...] = field(default=(), repr=False)
    # When merged as an update of the snapshot before: the ids whose record changed, and that snapshot's
    # ``by_id`` (the history recorder takes the word only after that very snapshot). None: not known.
    changed: tuple[Sequence[str], Mapping[str, PerUserResourceUsage]] | None = field(default=None, repr=False)

    @cached_property
    def totals(self) -> Totals:
        """Totals over every user (computed once per snapshot)."""
        return totals(self.users)

    def adopt_totals(self, worked_out: Totals) -> None:
        """Take totals worked out for exactly these users by ``totals_of`` (the board does it from its columns)."""
        self.__dict__["totals"] = worked_out  # what the cached property would hold

    @property
    def ids(self) -> list[str]:
        """Every user id, in merge order."""
        return list(self.by_id)

    def user(self, user_id: str) -> PerUserResourceUsage | None:
        """One user's merged record, or None when no source reports it."""
        return self.by_id.get(user_id)

    def user_is_stale(self, user_id: str) -> bool:
        """Whether any of the user's numbers come from a source that did not answer this time."""
        return self.any_stale(self.origins.get(user_id, ()))

    def user_parts(self, user_id: str) -> list[tuple[str, PerUserResourceUsage]]:
        """The user's records per source (one entry when one source reported it once); [] when unknown."""
        if user_id in self.parts:
            return self.parts[user_id]
        usage = self.by_id.get(user_id)
        return [] if usage is None else [(self.origins[user_id][0], usage)]

    def evicted_at(self, user_id: str) -> datetime | None:
        """When the user's idle workflows are all due to be evicted, if known: the one eviction rule.

        An idle record disappears from its source ``per_user_workflow_timeout`` after its last
        activity (NAT checks every ``per_user_workflow_cleanup_interval``, so it may linger up to
        that much longer); the user leaves the dashboard when its last record goes, so this is the
        latest due time. None while any record is in flight or a source's timeout is unknown.
        """
        health = self.health_by_name
        due: list[datetime] = []
        for name, usage in self.user_parts(user_id):
            timeout = health[name].per_user_workflow_timeout
            if usage.session.ref_count > 0 or timeout is None:
                return None
            due.append(usage.session.last_activity + timedelta(seconds=timeout))
        return max(due) if due else None

    def evictions(self, last_activity: Sequence[float], ref_count: Sequence[int], origins: Sequence[int]) -> array:
        """``evicted_at`` of every user, in order, as epoch seconds (NaN: not known), given three of their columns
        (``origins``: a bit per source, in source order).

        The same rule, worked out in C for the users one source reports once (nearly all): last
        activity plus that source's timeout, except for users in flight; only merged users are
        worked out one by one.
        """
        timeouts = [s.per_user_workflow_timeout for s in self.sources]
        if all(t is None for t in timeouts):
            return array("d", [math.nan]) * len(self.users)
        timeout_of = {1 << n: math.nan if t is None else float(t) for n, t in enumerate(timeouts)}
        due = array("d", map(add, last_activity, map(timeout_of.get, origins, repeat(math.nan))))
        for i in compress(count(), ref_count):  # in flight: not due while it runs
            due[i] = math.nan
        if self.parts:
            users = self.users
            for i in compress(count(), map(self.parts.__contains__, self.by_id)):
                when = self.evicted_at(users[i].user_id)
                due[i] = math.nan if when is None else when.timestamp()
        return due

    def response(self, users: list[PerUserResourceUsage] | None = None) -> PerUserMonitorResponse:
        """A NAT-shaped response of ``users`` (default: all), stamped with the snapshot time."""
        chosen = self.users if users is None else users
        # The users were validated when they entered the monitor; skip validating them again.
        return PerUserMonitorResponse.model_construct(
            timestamp=self.timestamp, total_active_users=len(chosen), users=chosen
        )

    @cached_property
    def json_all(self) -> bytes:
        """The whole response as JSON, serialized once per snapshot."""
        return self.response().model_dump_json().encode()
