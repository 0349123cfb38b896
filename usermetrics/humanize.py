"""Times and lifecycles in words, the same way the page's JavaScript says them (sync, no Django)."""

from __future__ import annotations

from datetime import datetime, timedelta

from usermetrics.metrics import PerUserResourceUsage


def duration_words(seconds: float) -> str:
    """A short duration: '45 s', '12 min', '3 h 5 min', '2 d 3 h'."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(s // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def ago(when: datetime, now: datetime) -> str:
    """'3 min ago' (times in the future, from clock skew, read 'just now')."""
    seconds = (now - when).total_seconds()
    if seconds < 1:
        return "just now"
    # Only the largest unit: '3 h ago', not '3 h 5 min ago'.
    return " ".join(duration_words(seconds).split(" ")[:2]) + " ago"


def lifecycle_words(
    usage: PerUserResourceUsage, now: datetime, evicted_at: datetime | None = None, *, stuck_after: timedelta
) -> str:
    """'active with 2 in flight', 'idle for 12 min, evicted in about 18 min', or a stuck warning.

    ``evicted_at`` is when the sources will evict the idle user (``Snapshot.evicted_at``), if known;
    ``stuck_after`` is the stuck flag's threshold (``USERMETRICS["FLAGS"]["STUCK_AFTER"]``), so the
    words and the flag agree.
    """
    idle = now - usage.session.last_activity
    if usage.session.is_active:
        words = f"active with {usage.requests.active_requests} in flight"
        if idle >= stuck_after:
            words += f", no activity for {duration_words(idle.total_seconds())} (stuck?)"
        return words
    words = f"idle for {duration_words(idle.total_seconds())}"
    if evicted_at is not None:
        left = (evicted_at - now).total_seconds()
        words += f", evicted in about {duration_words(left)}" if left > 0 else ", due for eviction"
    return words


def number(value: float) -> str:
    """At most two decimals, no trailing zeros: '12.5', '3', '0.07' (as the page's script writes numbers)."""
    return f"{round(value, 2):.2f}".rstrip("0").rstrip(".")


# What a rate without requests reads (an en dash, as the admin shows an empty value).
NO_VALUE = "\u2013"


def rates_words(requests_per_min: float, error_rate: float | None, latency_ms: float | None) -> dict[str, str]:
    """A window's rates as the pages write them: '12.5', '3.2 %', '140 ms'; ``NO_VALUE`` without requests."""
    return {
        "requests_per_min": number(requests_per_min),
        "error_rate": NO_VALUE if error_rate is None else f"{number(error_rate * 100)} %",
        "latency_ms": NO_VALUE if latency_ms is None else f"{number(latency_ms)} ms",
    }
