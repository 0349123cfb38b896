"""Template filters of the dashboard pages (sync): relative times and exact UTC times."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template

from usermetrics import humanize
from usermetrics.identities import user_display

register = template.Library()


@register.filter
def ago(value: datetime, now: datetime) -> str:
    """``{{ when|ago:now }}`` -> '3 min ago'."""
    return humanize.ago(value, now)


@register.filter
def utc(value: datetime) -> str:
    """The exact time in UTC, to the millisecond: '2026-11-25 15:00:00.123 UTC'."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


@register.filter
def iso(value: datetime) -> str:
    """ISO 8601 in UTC, for the page's JavaScript to keep relative times current."""
    return value.astimezone(UTC).isoformat()


@register.filter
def display(user_id: str, labels: dict[str, str]) -> str:
    """``{{ user_id|display:labels }}`` -> 'Ada Lovelace (3f2a...)' for a named user, else the id."""
    return user_display(user_id, labels or {})
