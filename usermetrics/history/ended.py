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

from django.db.models import OuterRef, Subquery

from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.humanize import ago
from usermetrics.metrics import (
    PerUserMemoryMetrics,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
)
from usermetrics.models import UserLife
from usermetrics.selection import SORT_KEYS, matches, order_by, search_needle

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
    open_ids = UserLife.objects.filter(ended_at__isnull=True).values("user_id")
    newest = UserLife.objects.filter(user_id=OuterRef("user_id")).order_by("-life").values("pk")[:1]
    return (
        UserLife.objects.filter(ended_at__gte=ended_since(now))
        .exclude(user_id__in=open_ids)
        .filter(pk=Subquery(newest))
    )


def ended_count(*, now: datetime | None = None) -> int:
    """How many users are ended (``/metrics``)."""
    return ended_lives(now=now).count()


def ended_user_get(*, user_id: str, now: datetime | None = None) -> EndedUser | None:
    """The user's last ended life while it has no open one and the store keeps it (None: never seen, or live)."""
    row = ended_lives(now=now).filter(user_id=user_id).first()
    return ended_user(row) if row is not None else None


# What a life row needs to be shown and sorted like a live user (``life_usage``).
_LIFE_FIELDS = (
    "pk", "user_id", "created_at", "first_seen", "ended_at", "last_activity", "ref_count", "total_requests",
    "error_count", "avg_latency_ms", "functions", "groups", "exit_stack",
)  # fmt: skip


def ended_select(
    *, q: str = "", sort: str = "-last_activity", labels: Mapping[str, str] | None = None, now: datetime | None = None
) -> list[int]:
    """The life keys of the ended users whose id or label holds ``q``, in the order of ``sort``.

    Search and order are the live list's own (``selection.matches``, ``SORT_KEYS``), applied to
    each ended user's last known values; only the page's full rows are read later (``ended_page``).
    """
    needle = search_needle(q)
    names = labels or {}
    found: list[tuple[int, PerUserResourceUsage]] = []
    for values in ended_lives(now=now).values_list(*_LIFE_FIELDS).iterator(chunk_size=5000):
        if matches(needle, values[1], names.get(values[1])):
            found.append((values[0], life_usage(_row(values))))
    return [pk for pk, _ in order_by(found, sort, lambda name: _by_usage(SORT_KEYS[name]))]


def _row(values: tuple[Any, ...]) -> UserLife:
    # An unsaved instance only to hand to life_usage; "id" is the primary key's field name.
    return UserLife(**dict(zip(("id", *_LIFE_FIELDS[1:]), values, strict=True)))


def _by_usage(key: Any) -> Any:
    return lambda item: key(item[1])


def ended_page(pks: list[int]) -> list[EndedUser]:
    """The ended users of ``pks`` (a page of ``ended_select``), in that order."""
    rows = {row.pk: row for row in UserLife.objects.filter(pk__in=pks)}
    return [ended_user(rows[pk]) for pk in pks if pk in rows]


def ended_iter(pks: list[int], *, chunk: int = 500) -> Iterator[list[EndedUser]]:
    """The ended users of ``pks`` in chunks (the export streams them)."""
    for part in chunks(pks, chunk):
        yield ended_page(part)
