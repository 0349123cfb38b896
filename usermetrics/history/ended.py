"""Ended users (sync ORM): users no source reports any more, with their last known values.

One retention rule (``ended_since``): an ended user is listed as long as the store keeps its life,
``ROLLUP_RETENTION_DAYS``; the list's Ended tab, the detail page, the exports and ``/metrics``
all count with it. Search and order follow the live list's own rules (``selection.matches`` and
``selection.order_by``), so a search finds the same users whether they are live or gone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import Case, F, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce, Collate

from usermetrics.board import NO_PERCENTILE
from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.humanize import ago
from usermetrics.metrics import (
    PerUserMemoryMetrics,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
)
from usermetrics.models import UserLife, user_key
from usermetrics.selection import WINDOW_SORT_KEYS, matches, search_needle

from .samples import chunks


@dataclass
class EndedUser:
    """A user whose last life ended: when, and its last known values."""

    user_id: str
    life: int
    ended_at: datetime
    sources: tuple[str, ...]
    usage: PerUserResourceUsage

    def ended_ago(self, now: datetime | None = None) -> str:
        """``ended 3 min ago`` (the phrase the pages show)."""
        return "ended " + ago(self.ended_at, now or utcnow())


def ended_since(now: datetime | None = None) -> datetime:
    """The oldest end time an ended user is still listed with: the one retention rule."""
    return (now or utcnow()) - get_config().history.rollup_retention


def life_usage(row: UserLife) -> PerUserResourceUsage:
    """A life's last known values as a NAT-shaped record (no validation: the values came from one)."""
    last = row.last_activity or row.ended_at or row.first_seen
    return PerUserResourceUsage.model_construct(
        user_id=row.user_id,
        session=PerUserSessionMetrics.model_construct(
            created_at=row.created_at, last_activity=last, ref_count=row.ref_count, is_active=row.ref_count > 0
        ),
        requests=PerUserRequestMetrics.model_construct(
            total_requests=row.total_requests,
            active_requests=row.ref_count,
            avg_latency_ms=row.avg_latency_ms,
            error_count=row.error_count,
        ),
        memory=PerUserMemoryMetrics.model_construct(
            per_user_functions_count=row.functions,
            per_user_function_groups_count=row.groups,
            exit_stack_size=row.exit_stack,
        ),
    )


def ended_user(row: UserLife) -> EndedUser:
    """An ``EndedUser`` from its life row."""
    assert row.ended_at is not None
    return EndedUser(
        user_id=row.user_id,
        life=row.life,
        ended_at=row.ended_at,
        sources=tuple(s for s in row.sources.split(",") if s),
        usage=life_usage(row),
    )


def ended_lives(*, now: datetime | None = None) -> Any:
    """The newest ended life of every user that has no open life and is still kept (a lazy queryset)."""
    open_keys = UserLife.objects.filter(ended_at__isnull=True).values("user_key")
    newest = UserLife.objects.filter(user_key=OuterRef("user_key")).order_by("-life").values("pk")[:1]
    return (
        UserLife.objects.filter(ended_at__gte=ended_since(now))
        .exclude(user_key__in=open_keys)
        .filter(pk=Subquery(newest))
    )


def ended_count(*, now: datetime | None = None) -> int:
    """How many users are ended (``/metrics``)."""
    return ended_lives(now=now).count()


def ended_user_get(*, user_id: str, now: datetime | None = None) -> EndedUser | None:
    """The user's last ended life while it has no open one and the store keeps it (None: never seen, or live)."""
    row = ended_lives(now=now).filter(user_key=user_key(user_id)).first()
    return ended_user(row) if row is not None else None


def _order_fields(qs: Any) -> tuple[Any, dict[str, Any]]:
    """``qs`` annotated so that each list sort key (``selection.SORT_KEYS``) orders it as the live list does.

    The same values ``life_usage`` shows (and ``board.COLUMNS`` would hold): "active" is
    ``ref_count > 0``, the last activity falls back to the end and then the first sight; user ids
    compare by code point (the "C" collation on PostgreSQL; SQLite's default is already binary).
    """
    user_id: Any = F("user_id")
    if connections[qs.db].vendor == "postgresql":
        user_id = Collate("user_id", "C")
    qs = qs.annotate(
        o_user_id=user_id,
        o_is_active=Case(When(ref_count__gt=0, then=Value(1)), default=Value(0)),
        o_last_activity=Coalesce("last_activity", "ended_at", "first_seen"),
        # An ended user has no companion figures now: as on a board, no percentile and nothing queued.
        o_no_percentile=Value(NO_PERCENTILE),
        o_nothing_queued=Value(0),
    )
    fields = {
        "user_id": "o_user_id",
        "created_at": "created_at",
        "last_activity": "o_last_activity",
        "ref_count": "ref_count",
        "is_active": "o_is_active",
        "total_requests": "total_requests",
        "active_requests": "ref_count",
        "avg_latency_ms": "avg_latency_ms",
        "error_count": "error_count",
        "per_user_functions_count": "functions",
        "per_user_function_groups_count": "groups",
        "exit_stack_size": "exit_stack",
        "p50_ms": "o_no_percentile",
        "p95_ms": "o_no_percentile",
        "p99_ms": "o_no_percentile",
        "queued": "o_nothing_queued",
    }
    return qs, fields


def ended_select(
    *, q: str = "", sort: str = "-last_activity", labels: Mapping[str, str] | None = None, now: datetime | None = None
) -> list[int]:
    """The life keys of the ended users whose id or label holds ``q``, in the order of ``sort``.

    The database sorts (ties by user id, as ``selection.order_by`` does); the search is the live
    list's own rule (``selection.matches``) over the ids alone. Only the page's full rows are read
    later (``ended_page``).
    """
    qs, fields = _order_fields(ended_lives(now=now))
    if sort.removeprefix("-") in WINDOW_SORT_KEYS:
        sort = "user_id"  # the page orders these by the window's sums (``services.spend``)
    name = fields[sort.removeprefix("-")]
    ordering = [("-" if sort.startswith("-") else "") + name]
    if name != "o_user_id":
        ordering.append("o_user_id")
    qs = qs.order_by(*ordering)
    needle = search_needle(q)
    if not needle:
        return list(qs.values_list("pk", flat=True))
    names = labels or {}
    return [
        pk
        for pk, uid in qs.values_list("pk", "user_id").iterator(chunk_size=5000)
        if matches(needle, uid, names.get(uid))
    ]


def ended_page(pks: list[int]) -> list[EndedUser]:
    """The ended users of ``pks`` (a page of ``ended_select``), in that order."""
    rows = {row.pk: row for row in UserLife.objects.filter(pk__in=pks)}
    return [ended_user(rows[pk]) for pk in pks if pk in rows]


def ended_iter(pks: list[int], *, chunk: int = 500) -> Iterator[list[EndedUser]]:
    """The ended users of ``pks`` in chunks (the export streams them)."""
    for part in chunks(pks, chunk):
        yield ended_page(part)
