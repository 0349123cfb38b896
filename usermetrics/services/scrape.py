"""What one Prometheus scrape reports (async): the snapshot, the refresh counters, ended users, recorder totals."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import sync_to_async

from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.history.ended import ended_count
from usermetrics.snapshot import Snapshot

from .live import get_service, recorder_get, snapshot_get

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observed:
    """The history recorder's process totals of recorded traffic (monotonic)."""

    requests: int
    errors: int
    latency_ms: float


@dataclass(frozen=True)
class ScrapeState:
    """Everything one scrape reports, gathered before the collector runs."""

    snapshot: Snapshot
    now: datetime
    refreshes: int
    interval: float
    ended: int | None  # ended users kept by the history (None: history off or unreadable)
    observed: Observed | None  # None: this process records no history


async def scrape_get() -> ScrapeState:
    """The state of one scrape; the live aggregates are reported even when the store is unreadable."""
    service = get_service()
    snapshot = await snapshot_get()
    ended: int | None = None
    if get_config().history.enabled:
        try:
            ended = await sync_to_async(ended_count)()
        except Exception:
            logger.exception("Counting ended users for /metrics failed")
    rec = recorder_get()
    observed = Observed(rec.observed_requests, rec.observed_errors, rec.observed_latency_ms) if rec else None
    return ScrapeState(
        snapshot=snapshot,
        now=utcnow(),
        refreshes=service.refresh_count,
        interval=service.interval,
        ended=ended,
        observed=observed,
    )
