"""The recorder (async edge over sync writes): the monitor's listener that writes the history.

Per refresh it hands the snapshot to one worker thread, which writes it (``lives.LifeBook``, and
the sources' health, ``sources.SourceLog``) and now and then rolls up and prunes
(``rollup.maintain``). The event loop never waits for the
database: when the writer is still busy, only the newest snapshot waits (the counters are
cumulative, so a skipped snapshot loses no traffic).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import connections

from usermetrics.conf import HistoryConfig
from usermetrics.handoff import Handoff
from usermetrics.snapshot import Snapshot

from .lives import LifeBook, RecordResult
from .rollup import maintain
from .sources import SourceLog

logger = logging.getLogger(__name__)


class Recorder:
    """Snapshot listener that writes the history; writes run in one worker thread, never on the loop."""

    def __init__(self, config: HistoryConfig) -> None:
        """Record with the ``HISTORY`` settings."""
        self.config = config
        self.book = LifeBook(config)
        self.sources = SourceLog(config.sample_interval)
        self.maintenance_interval = timedelta(seconds=config.maintenance_interval)
        self._last_maintenance: datetime | None = None
        # Process totals of the recorded deltas: monotonic counters for Prometheus.
        self.observed_requests = 0
        self.observed_errors = 0
        self.observed_latency_ms = 0.0
        # The companions' histograms of the recorded requests, added up (None until one is recorded),
        # and NAT's latency sum of those same requests: a Prometheus histogram over every user.
        self.observed_histogram: list[int] | None = None
        self.observed_histogram_ms = 0.0
        self.records = 0
        # The writer thread keeps its one connection from record to record (opening one per refresh
        # cost more than the writes themselves at 10,000 users); one that failed is closed, so the
        # next record opens a fresh one.
        self._writer: Handoff[Snapshot] = Handoff(
            self.record,
            name="usermetrics-history",
            failure="Recording history failed",
            logger=logger,
            on_error=connections.close_all,  # this thread's connections
            on_close=connections.close_all,
        )

    # -- async side ----------------------------------------------------------------------------

    async def __call__(self, snapshot: Snapshot) -> None:
        """The monitor's listener: hand the snapshot to the writer and return at once."""
        self._writer.submit(snapshot)

    async def flush(self) -> None:
        """Wait until every snapshot handed over so far is written."""
        await self._writer.flush()

    async def aclose(self) -> None:
        """Write what is pending, close the worker thread's database connection, stop the thread."""
        await self._writer.aclose()

    # -- sync side -----------------------------------------------------------------------------

    def record(self, snapshot: Snapshot) -> RecordResult:
        """Write one snapshot now (sync), then roll up and prune when it is time."""
        result = self.book.record(snapshot)
        self.sources.record(snapshot)
        self.observed_requests += result.d_requests
        self.observed_errors += result.d_errors
        self.observed_latency_ms += result.d_latency_ms
        if result.extras is not None:
            counts = result.extras.latency
            seen = self.observed_histogram or [0] * len(counts)
            self.observed_histogram = [a + b for a, b in zip(seen, counts, strict=True)]
            self.observed_histogram_ms += result.d_latency_ms_counted
        self.records += 1
        ts = snapshot.timestamp
        if self._last_maintenance is None or ts - self._last_maintenance >= self.maintenance_interval:
            self._last_maintenance = ts
            maintain(self.config, now=ts)
        return result
