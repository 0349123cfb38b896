"""Window stats (sync ORM): a user's or everyone's traffic over the last N minutes, from recorded deltas.

Sums of the deltas, so evictions and counter resets are handled (a new life counts from zero).
Complete hours come from the hourly roll-ups when they exist; the rest from raw samples.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Max, Min, Sum

from usermetrics.clock import utcnow
from usermetrics.models import TotalsHourly, TotalsSample, UserHourly, UserLife, UserSample

from .latency import ExtrasSum, summed
from .rollup import HOUR, floor_hour
from .samples import chunks, lives_of, rows_of

# The window's percentiles as documents name them (``WindowStats.percentiles``'s order).
PERCENTILE_KEYS = ("p50_ms", "p95_ms", "p99_ms")


@dataclass
class WindowStats:
    """One user's (or everyone's) traffic over a window, from the recorded deltas."""

    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    exit_stack_growth: int = 0
    functions_growth: int = 0
    # The span the numbers cover: the window, or less when the history starts inside it.
    seconds: float = 0.0
    since: datetime | None = None
    # The companions' figures over the window (the sum of its samples' histogram changes, the most
    # queued at any sample); None when no companion reported the user in it.
    extras: ExtrasSum | None = None

    @property
    def percentiles(self) -> tuple[float | None, ...]:
        """p50, p95, p99 of the window's requests (ms), from its histogram; Nones without one."""
        return self.extras.percentiles if self.extras is not None else (None, None, None)

    @property
    def requests_per_min(self) -> float:
        """Requests per minute over the window."""
        return round(self.requests * 60 / self.seconds, 3) if self.seconds else 0.0

    @property
    def error_rate(self) -> float | None:
        """Failed share of the window's requests (None without requests)."""
        return round(self.errors / self.requests, 4) if self.requests > 0 else None

    @property
    def latency_ms(self) -> float | None:
        """Mean latency of the window's requests: change of (avg x count) over change of count."""
        return round(self.latency_sum_ms / self.requests, 2) if self.requests > 0 else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "requests_per_min": self.requests_per_min,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "exit_stack_growth": self.exit_stack_growth,
            "functions_growth": self.functions_growth,
            **dict(zip(PERCENTILE_KEYS, self.percentiles, strict=True)),
            "max_queued": self.extras.queued if self.extras is not None else None,
            "seconds": self.seconds,
            "since": self.since.isoformat() if self.since else None,
        }


def history_start() -> datetime | None:
    """When the recorded history begins: its first totals row, raw or rolled up (None when empty).

    The recorder writes a totals row after every refresh, so this is when recording started
    (or the oldest that retention kept).
    """
    raw = TotalsSample.objects.aggregate(m=Min("ts"))["m"]
    hour = TotalsHourly.objects.aggregate(m=Min("hour"))["m"]
    return min((t for t in (raw, hour) if t is not None), default=None)


def covered(window: timedelta, now: datetime) -> WindowStats:
    """Empty stats over the part of ``window`` (ending ``now``) that the history covers.

    The one rule of a rate's divisor: a window that starts before the history does is counted
    from the history's start, so rates right after a start read what happened, not a fraction
    of it. With no history at all the whole window is the span (and every count is zero).
    """
    start = now - window
    first = history_start()
    since = max(start, first) if first is not None else start
    return WindowStats(seconds=max(1.0, (now - since).total_seconds()), since=since)


def _split(start: datetime, now: datetime) -> tuple[datetime, datetime] | None:
    """The part [a, b) of the window that the hourly roll-ups cover, or None."""
    rolled = TotalsHourly.objects.aggregate(m=Max("hour"))["m"]
    if rolled is None:
        return None
    a = floor_hour(start) + (HOUR if floor_hour(start) != start else timedelta(0))
    b = min(floor_hour(now), rolled + HOUR)
    return (a, b) if b - a >= HOUR else None


def ranges_of(start: datetime, now: datetime, *, raw: Any, hourly: Any) -> list[tuple[Any, dict[str, Any]]]:
    """The (model, lookup) parts of the window (``start``, ``now``]: raw rows around the complete hours rolled up.

    ``raw`` is the table of samples (``ts``), ``hourly`` its roll-up (``hour``); every windowed sum reads these.
    """
    split = _split(start, now)
    if split is None:
        return [(raw, {"ts__gt": start, "ts__lte": now})]
    a, b = split
    return [
        (raw, {"ts__gt": start, "ts__lt": a}),
        (hourly, {"hour__gte": a, "hour__lt": b}),
        (raw, {"ts__gte": b, "ts__lte": now}),
    ]


def window_stats(
    *,
    window: timedelta,
    now: datetime | None = None,
    user_ids: Iterable[str] | None = None,
    percentiles: bool = True,
) -> dict[str, WindowStats]:
    """Per user id: requests, errors, latency and resource growth over the last ``window``.

    ``percentiles``: also sum the companions' histograms (``WindowStats.extras``); the flags of
    every user skip them unless an alert reads them (they cost about three times the sums).

    Sums the recorded deltas, so evictions and counter resets are handled (a new life counts
    from zero). Complete hours come from the roll-ups when they exist; the rest from raw samples.
    """
    now = now or utcnow()
    span = covered(window, now)
    out: dict[str, WindowStats] = {}
    ranges = ranges_of(now - window, now, raw=UserSample, hourly=UserHourly)
    lives = lives_of(user_ids) if user_ids is not None else None
    sums = {"r": Sum("d_requests"), "e": Sum("d_errors"), "lat": Sum("d_latency_ms")}
    sums |= {"x": Sum("d_exit_stack"), "f": Sum("d_functions")}
    for model, lookup in ranges:
        if lives is None:
            rows: Iterable[dict[str, Any]] = (
                model.objects.filter(**lookup).values(uid=F("life__user_id")).annotate(**sums)
            )
        else:
            rows = []
            for part in chunks(list(lives), 500):
                found = model.objects.filter(**lookup, life_id__in=part).values("life_id").annotate(**sums)
                rows.extend({**row, "uid": lives[row["life_id"]]} for row in found)
        for row in rows:
            stats = out.setdefault(row["uid"], WindowStats(seconds=span.seconds, since=span.since))
            stats.requests += row["r"] or 0
            stats.errors += row["e"] or 0
            stats.latency_sum_ms += row["lat"] or 0.0
            stats.exit_stack_growth += row["x"] or 0
            stats.functions_growth += row["f"] or 0
    for uid, extras in (_extras_of_users(ranges, lives) if percentiles else {}).items():
        out.setdefault(uid, WindowStats(seconds=span.seconds, since=span.since)).extras = extras
    return out


def _extras_of_users(ranges: list[tuple[Any, dict[str, Any]]], lives: dict[int, str] | None) -> dict[str, ExtrasSum]:
    """Per user id, the sum of the extras columns of ``ranges`` (users without any are left out).

    Summed here, not in SQL: a histogram is a column of bytes. Only rows that have one are read.
    """
    by_life: dict[int, list[bytes]] = {}
    count = None if lives is None else len(lives)
    for model, lookup in ranges:
        query = model.objects.filter(**lookup, extras__isnull=False)
        parts = [query] if lives is None else [query.filter(life_id__in=p) for p in chunks(list(lives), 500)]
        for part in parts:
            for life_id, raw in rows_of(part.values_list("life_id", "extras"), lives=count):
                by_life.setdefault(life_id, []).append(raw)
    if lives is None:
        lives = {}
        for chunk in chunks(list(by_life), 500):
            lives.update(UserLife.objects.filter(pk__in=chunk).values_list("pk", "user_id"))
    out: dict[str, ExtrasSum] = {}
    for life_id, raws in by_life.items():
        total = summed(raws)
        uid = lives.get(life_id)
        if total is None or uid is None:
            continue
        if uid in out:
            out[uid].add(total)
        else:
            out[uid] = total
    return out


def overview_stats(*, window: timedelta, now: datetime | None = None) -> WindowStats:
    """Everyone's requests, errors and latency over the last ``window``."""
    now = now or utcnow()
    stats = covered(window, now)
    ranges = ranges_of(now - window, now, raw=TotalsSample, hourly=TotalsHourly)
    for model, lookup in ranges:
        row = model.objects.filter(**lookup).aggregate(r=Sum("d_requests"), e=Sum("d_errors"), lat=Sum("d_latency_ms"))
        stats.requests += row["r"] or 0
        stats.errors += row["e"] or 0
        stats.latency_sum_ms += row["lat"] or 0.0
        found = summed(model.objects.filter(**lookup, extras__isnull=False).values_list("extras", flat=True))
        if found is not None:
            if stats.extras is None:
                stats.extras = found
            else:
                stats.extras.add(found)
    return stats
