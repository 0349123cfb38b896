"""Source health over time (sync ORM, written from the recorder's thread): up / stale / down, fetch time, body size.

Each refresh's ``SourceHealth`` is written when the source's state changed, else at most every
``SAMPLE_INTERVAL`` per source, so a steady source costs a row per interval and a flapping one
a row per change. State changes are logged at WARNING here, once each (the monitor logs every
failed fetch). Pruned with the raw samples (``rollup.prune``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from usermetrics.clock import utcnow
from usermetrics.models import SourceSample
from usermetrics.snapshot import Snapshot

logger = logging.getLogger(__name__)


class SourceLog:
    """Writes each source's health into ``SourceSample`` rows; remembers what it last wrote per source."""

    def __init__(self, sample_interval: float) -> None:
        """Write a steady source at most every ``sample_interval`` seconds."""
        self.sample_interval = timedelta(seconds=sample_interval)
        self._last: dict[str, tuple[datetime, str]] = {}

    def record(self, snapshot: Snapshot) -> int:
        """Write the rows ``snapshot`` calls for; returns how many."""
        rows = []
        for health in snapshot.sources:
            last = self._last.get(health.name)
            if last is not None and last[1] != health.state:
                why = f": {health.last_error}" if health.state != "ok" and health.last_error else ""
                logger.warning("Source %s is %s (was %s)%s", health.name, health.state, last[1], why)
            elif last is None and health.state != "ok":
                logger.warning("Source %s is %s: %s", health.name, health.state, health.last_error or "no answer yet")
            if last is not None and last[1] == health.state and snapshot.timestamp - last[0] < self.sample_interval:
                continue
            self._last[health.name] = (snapshot.timestamp, health.state)
            rows.append(
                SourceSample(
                    ts=snapshot.timestamp,
                    source=health.name,
                    state=health.state,
                    users=health.users,
                    duration_ms=health.last_duration_ms,
                    body_bytes=health.last_body_bytes,
                    error=(health.last_error or "") if health.state != "ok" else "",
                )
            )
        SourceSample.objects.bulk_create(rows)
        return len(rows)


@dataclass
class SourceTimeline:
    """One source over a window: its samples oldest first and the share of the window in each state."""

    name: str
    points: list[dict[str, Any]] = field(default_factory=list)
    shares: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "points": self.points, "shares": self.shares}


def sources_history(*, window: timedelta, now: datetime | None = None) -> dict[str, SourceTimeline]:
    """Every recorded source's samples over the last ``window`` and its share of time ok / stale / down.

    A state lasts from its sample to the next one (the last to ``now``); the state before the
    window's first sample is carried in from the last sample before the window, so a source
    that was down all along reads down, not unknown. Time before any sample is unknown.
    """
    now = now or utcnow()
    start = now - window
    out: dict[str, SourceTimeline] = {}
    names = SourceSample.objects.filter(ts__gt=start - timedelta(days=1)).values_list("source", flat=True)
    for name in sorted(set(names)):
        before = SourceSample.objects.filter(source=name, ts__lte=start).order_by("-ts").first()
        rows = list(SourceSample.objects.filter(source=name, ts__gt=start, ts__lte=now).order_by("ts"))
        timeline = SourceTimeline(name)
        marks = ([(start, before.state)] if before else []) + [(r.ts, r.state) for r in rows]
        spent: dict[str, float] = {}
        for (ts, state), nxt in zip(marks, [*marks[1:], (now, None)], strict=True):
            spent[state] = spent.get(state, 0.0) + max(0.0, (nxt[0] - ts).total_seconds())
        total = window.total_seconds()
        timeline.shares = {state: round(spent.get(state, 0.0) / total, 4) for state in ("ok", "stale", "down")}
        timeline.points = [
            {
                "t": r.ts.timestamp(),
                "state": r.state,
                "users": r.users,
                "duration_ms": r.duration_ms,
                "body_bytes": r.body_bytes,
                "error": r.error or None,
            }
            for r in rows
        ]
        out[name] = timeline
    return out
