"""Time (sync, no Django): the one ``utcnow`` and the clock type that time-driven code takes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

# What code that decides by the time takes instead of reading it, so tests can move time.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Timezone-aware now in UTC; nothing in usermetrics keeps naive times."""
    return datetime.now(UTC)
