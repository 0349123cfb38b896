"""Chart series (sync ORM): per-user and overall buckets over a window, and the list's sparklines."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import F

from usermetrics.clock import utcnow
from usermetrics.models import TotalsHourly, TotalsSample, UserHourly, UserLife, UserSample, user_key
from usermetrics.windows import chart_points, window_name

from .latency import ExtrasSum, decode
from .query import PERCENTILE_KEYS
from .rollup import HOUR
from .samples import chunks, lives_of


def epoch(value: datetime) -> float:
    """``value`` as epoch seconds (ms precision): the charts' time axis."""
    return round(value.timestamp(), 3)


@dataclass
class _Bucket:
    requests: int = 0
    errors: int = 0
    latency_sum: float = 0.0
    gauges: dict[str, float] = field(default_factory=dict)
    extras: ExtrasSum | None = None  # the companions' histogram changes of the bucket's samples

    def add(self, requests: int, errors: int, latency_sum: float, extras: ExtrasSum | None) -> None:
        self.requests += requests
        self.errors += errors
        self.latency_sum += latency_sum
        if extras is None:
            return
        if self.extras is None:
            self.extras = ExtrasSum.empty()
        self.extras.add(extras)


def bucket_grid(window: timedelta, points: int, now: datetime) -> tuple[datetime, float]:
    """The start of the first of ``points`` buckets over ``window`` ending at ``now``, and their step (s)."""
    step = window.total_seconds() / points
    # Align to the step so that two calls a second apart give the same buckets.
    end_epoch = math.ceil(now.timestamp() / step) * step
    return datetime.fromtimestamp(end_epoch - step * points, UTC), step


def _series_doc(start: datetime, step: float, buckets: list[_Bucket], gauges: tuple[str, ...]) -> dict[str, Any]:
    per_min = 60 / step
    doc: dict[str, Any] = {
        "step": step,
        "t": [epoch(start) + step * (i + 1) for i in range(len(buckets))],
        "requests_per_min": [round(b.requests * per_min, 3) for b in buckets],
        "errors_per_min": [round(b.errors * per_min, 3) for b in buckets],
        "latency_ms": [round(b.latency_sum / b.requests, 2) if b.requests > 0 else None for b in buckets],
    }
    # Each bucket's percentiles from the sum of its histogram changes (None: no request counted).
    each = [b.extras.percentiles if b.extras is not None else (None, None, None) for b in buckets]
    for n, key in enumerate(PERCENTILE_KEYS):
        doc[key] = [p[n] for p in each]
    for name in gauges:
        doc[name] = [b.gauges.get(name) for b in buckets]
    return doc


def _decoded(raw: bytes | memoryview | None) -> ExtrasSum | None:
    return decode(raw) if raw is not None else None


def _gauges(in_flight: int, exit_stack: int, extras: ExtrasSum | None) -> dict[str, float]:
    """A user's gauges at a sample: ``queued`` only where the companions report it."""
    gauges: dict[str, float] = {"in_flight": in_flight, "exit_stack": exit_stack}
    if extras is not None:
        gauges["queued"] = extras.queued
    return gauges


def _gauges_total(users: int, active: int, in_flight: int, extras: ExtrasSum | None) -> dict[str, float]:
    """Everyone's gauges at a totals row: ``queued`` (over every user) where any user has extras."""
    gauges: dict[str, float] = {"users": users, "active": active, "in_flight": in_flight}
    if extras is not None:
        gauges["queued"] = extras.queued
    return gauges


def user_series(
    *, user_id: str, window: timedelta, now: datetime | None = None, points: int | None = None
) -> dict[str, Any]:
    """One user's chart series over ``window``: requests/min, errors/min, window latency, in-flight, exit stack.

    Arrays share the time axis ``t`` (epoch seconds, the end of each bucket). Gauges (in-flight,
    exit stack) carry the last known value forward while the life is open, and are null when the
    user had no open life.
    """
    now = now or utcnow()
    points = points or chart_points(window)
    start, step = bucket_grid(window, points, now)
    buckets = [_Bucket() for _ in range(points)]
    lives = list(UserLife.objects.filter(user_key=user_key(user_id)).order_by("life"))
    use_hourly = window > timedelta(days=1)
    for life in lives:
        if life.ended_at is not None and life.ended_at < start:
            continue
        last_gauges: dict[str, float] | None = None
        if not use_hourly:
            before = UserSample.objects.filter(life=life, ts__lte=start).order_by("-ts").first()
            if before is not None:
                last_gauges = _gauges(before.ref_count, before.exit_stack, _decoded(before.extras))
            rows = UserSample.objects.filter(life=life, ts__gt=start, ts__lte=now).order_by("ts")
            marks = [
                (s.ts, s.d_requests, s.d_errors, s.d_latency_ms, s.ref_count, s.exit_stack, _decoded(s.extras))
                for s in rows
            ]
        else:
            # An hourly row covers [hour, hour + 1 h): it is placed by its start, like a bucket.
            rows_h = UserHourly.objects.filter(life=life, hour__gte=start).order_by("hour")
            marks = [
                (h.hour, h.d_requests, h.d_errors, h.d_latency_ms, h.max_ref_count, h.max_exit_stack,
                 _decoded(h.extras))
                for h in rows_h
            ]  # fmt: skip
            rolled = max((h.hour + HOUR for h in rows_h), default=start)
            rows = UserSample.objects.filter(life=life, ts__gte=max(start, rolled), ts__lte=now).order_by("ts")
            marks += [
                (s.ts, s.d_requests, s.d_errors, s.d_latency_ms, s.ref_count, s.exit_stack, _decoded(s.extras))
                for s in rows
            ]
        index_of = {ts: min(points - 1, max(0, int((ts - start).total_seconds() // step))) for ts, *_ in marks}
        filled: dict[int, dict[str, float]] = {}
        for ts, dr, de, dl, ref, stack, extras in marks:
            if ts < start:
                continue
            buckets[index_of[ts]].add(dr, de, dl, extras)
            g = filled.setdefault(index_of[ts], {"in_flight": 0, "exit_stack": 0})
            g["in_flight"] = max(g["in_flight"], ref)
            g["exit_stack"] = stack
            if extras is not None:  # the most queued in the bucket, for users the companions report
                g["queued"] = max(g.get("queued", 0), extras.queued)
        begin = 0 if life.first_seen <= start else int((life.first_seen - start).total_seconds() // step)
        end = points - 1 if life.ended_at is None else int((life.ended_at - start).total_seconds() // step)
        for i in range(max(0, begin), min(points - 1, end) + 1):
            if i in filled:
                last_gauges = filled[i]
            if last_gauges is not None:
                for name, value in last_gauges.items():
                    buckets[i].gauges[name] = buckets[i].gauges.get(name, 0) + value
    doc = _series_doc(start, step, buckets, ("in_flight", "exit_stack", "queued"))
    doc.update(
        user_id=user_id,
        window=window_name(window),
        lives=[
            {
                "life": life.life,
                "created_at": life.created_at.isoformat(),
                "first_seen": life.first_seen.isoformat(),
                "ended_at": life.ended_at.isoformat() if life.ended_at else None,
            }
            for life in lives
        ],
    )
    return doc


def overview_series(*, window: timedelta, now: datetime | None = None, points: int | None = None) -> dict[str, Any]:
    """Everyone's chart series over ``window``: users, active, in-flight, requests/min, errors/min, latency."""
    now = now or utcnow()
    points = points or chart_points(window)
    start, step = bucket_grid(window, points, now)
    buckets = [_Bucket() for _ in range(points)]
    marks: list[tuple[datetime, int, int, float, dict[str, float], ExtrasSum | None]] = []
    rolled_to = start
    if window > timedelta(days=1):
        # An hourly row covers [hour, hour + 1 h): it is placed by its start, like a bucket.
        for h in TotalsHourly.objects.filter(hour__gte=start, hour__lt=now).order_by("hour"):
            extras = _decoded(h.extras)
            gauges = _gauges_total(h.max_users, h.max_active, h.max_in_flight, extras)
            marks.append((h.hour, h.d_requests, h.d_errors, h.d_latency_ms, gauges, extras))
            rolled_to = h.hour + HOUR
    rows = TotalsSample.objects.filter(ts__gte=max(start, rolled_to), ts__lte=now).order_by("ts")
    columns = ("ts", "d_requests", "d_errors", "d_latency_ms", "users", "active", "in_flight", "extras")
    for ts, dr, de, dl, users, active, in_flight, raw in rows.values_list(*columns):
        extras = _decoded(raw)
        marks.append((ts, dr, de, dl, _gauges_total(users, active, in_flight, extras), extras))
    for ts, dr, de, dl, gauges, extras in marks:
        if ts < start:
            continue
        i = min(points - 1, int((ts - start).total_seconds() // step))
        b = buckets[i]
        b.add(dr, de, dl, extras)
        for name, value in gauges.items():
            b.gauges[name] = max(b.gauges.get(name, 0), value)
    doc = _series_doc(start, step, buckets, ("users", "active", "in_flight", "queued"))
    doc["window"] = window_name(window)
    return doc


def sparklines(
    *, user_ids: Iterable[str], window: timedelta, now: datetime | None = None, points: int = 30
) -> dict[str, list[float]]:
    """Requests per minute of each of ``user_ids`` in ``points`` buckets over ``window`` (one query).

    For the list's small activity charts: a page of users at once, zeros for a user without traffic.
    """
    now = now or utcnow()
    ids = list(dict.fromkeys(user_ids))
    start, step = bucket_grid(window, points, now)
    out = {uid: [0.0] * points for uid in ids}
    per_min = 60 / step
    lives = lives_of(ids)
    for chunk in chunks(list(lives), 500):
        rows = UserSample.objects.filter(life_id__in=chunk, ts__gt=start, ts__lte=now, d_requests__gt=0)
        for life, ts, requests in rows.values_list("life_id", "ts", "d_requests").iterator(chunk_size=2000):
            i = min(points - 1, int((ts - start).total_seconds() // step))
            out[lives[life]][i] += requests * per_min
    return {uid: [round(v, 3) for v in values] for uid, values in out.items()}


def user_samples(*, user_id: str, since: datetime) -> Any:
    """One user's raw samples after ``since``, oldest first, each with its life's number (a lazy queryset).

    Model instances, not ``values_list()``: Django's ``aiterator()`` runs a ``values_list()`` query on
    the event loop thread (SynchronousOnlyOperation); the model iterable is fetched in a thread.
    """
    return (
        UserSample.objects.filter(life__user_key=user_key(user_id), ts__gt=since)
        .annotate(life_number=F("life__life"))
        .defer("life_id", "d_exit_stack", "d_functions", "extras")
        .order_by("ts", "life_number")
    )
