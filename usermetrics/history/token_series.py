"""Chart series of tokens and cost (sync ORM): one user's tokens/min and cost/hour, and the fleet's cost/hour.

On the same time axis as ``series`` (``bucket_grid``: buckets aligned to the step, ``t`` the end
of each), so the pages draw them beside the request charts. Costs are what the tokens cost when
they were used (``history.tokens``). Without a token counted in the window (no companion, or no
LLM call), every point is ``null``: the pages draw no chart for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from usermetrics.clock import utcnow
from usermetrics.models import TotalsHourly, TotalsSample, UserHourly, UserLife, UserSample, user_key
from usermetrics.windows import chart_points

from .rollup import HOUR
from .series import bucket_grid, epoch
from .tokens import NANO

# Longer windows read the hourly roll-ups (as ``series`` does).
HOURLY_AFTER = timedelta(days=1)


def _doc(
    marks: Iterable[tuple[datetime, int | None, int | None]], start: datetime, step: float, points: int
) -> dict[str, Any]:
    tokens = [0] * points
    cost = [0] * points
    seen = False
    for ts, d_tokens, d_cost in marks:
        if ts < start:
            continue
        seen = True
        i = min(points - 1, max(0, int((ts - start).total_seconds() // step)))
        tokens[i] += d_tokens or 0
        cost[i] += d_cost or 0
    per_min, per_hour = 60 / step, 3600 / step
    return {
        "t": [epoch(start) + step * (i + 1) for i in range(points)],
        "tokens_per_min": [round(n * per_min, 3) if seen else None for n in tokens],
        "cost_per_hour": [round(c * per_hour / NANO, 9) if seen else None for c in cost],
    }


def user_token_series(
    *, user_id: str, window: timedelta, now: datetime | None = None, points: int | None = None
) -> dict[str, Any]:
    """One user's tokens per minute and cost per hour over ``window`` (``t``: the end of each bucket)."""
    now = now or utcnow()
    points = points or chart_points(window)
    start, step = bucket_grid(window, points, now)
    lives = list(UserLife.objects.filter(user_key=user_key(user_id)).values_list("pk", flat=True))
    marks: list[tuple[datetime, int | None, int | None]] = []
    rolled_to = start
    if window > HOURLY_AFTER:
        hourly = UserHourly.objects.filter(life_id__in=lives, hour__gte=start, hour__lt=now, d_tokens__isnull=False)
        for hour, d_tokens, d_cost in hourly.values_list("hour", "d_tokens", "d_cost"):
            marks.append((hour, d_tokens, d_cost))
            rolled_to = max(rolled_to, hour + HOUR)
    raw = UserSample.objects.filter(
        life_id__in=lives, ts__gt=start, ts__gte=rolled_to, ts__lte=now, d_tokens__isnull=False
    )
    marks += raw.values_list("ts", "d_tokens", "d_cost")
    return _doc(marks, start, step, points)


def fleet_cost_series(*, window: timedelta, now: datetime | None = None, points: int | None = None) -> dict[str, Any]:
    """Everyone's tokens per minute and cost per hour over ``window``."""
    now = now or utcnow()
    points = points or chart_points(window)
    start, step = bucket_grid(window, points, now)
    marks: list[tuple[datetime, int | None, int | None]] = []
    rolled_to = start
    if window > HOURLY_AFTER:
        for hour, d_tokens, d_cost in TotalsHourly.objects.filter(
            hour__gte=start, hour__lt=now, d_tokens__isnull=False
        ).values_list("hour", "d_tokens", "d_cost"):
            marks.append((hour, d_tokens, d_cost))
            rolled_to = max(rolled_to, hour + HOUR)
    raw = TotalsSample.objects.filter(ts__gt=start, ts__gte=rolled_to, ts__lte=now, d_tokens__isnull=False)
    marks += raw.values_list("ts", "d_tokens", "d_cost")
    return {**_doc(marks, start, step, points), "step": step}
