"""The recorder (async edge over sync writes): the monitor's listener that writes the history.

Per refresh it hands the snapshot to one worker thread, which writes it (``lives.LifeBook``, and
the sources' health, ``sources.SourceLog``) and now and then rolls up and prunes
(``rollup.maintain``). The event loop never waits for the
database: when the writer is still busy, only the newest snapshot waits (the counters are
cumulative, so a skipped snapshot loses no traffic).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.db import connections

from usermetrics.conf import HistoryConfig
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
        self.records = 0
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Snapshot | None = None
        self._worker: asyncio.Task[None] | None = None
        self._last_error: str | None = None

    # -- async side ----------------------------------------------------------------------------

    async def __call__(self, snapshot: Snapshot) -> None:
        """The monitor's listener: hand the snapshot to the writer and return at once."""
        self._pending = snapshot
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain(), name="usermetrics-history")

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            # One thread: one database connection, and records applied in order.
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usermetrics-history")
        while self._pending is not None:
            snapshot, self._pending = self._pending, None
            try:
                await loop.run_in_executor(self._executor, self._record_in_thread, snapshot)
            except Exception as exc:
                # Log each new kind of failure once (a missing migration would fail every refresh).
                message = f"{type(exc).__name__}: {exc}"
                if message != self._last_error:
                    logger.exception("Recording history failed (logged again only when the error changes)")
                self._last_error = message
            else:
                self._last_error = None

    def _record_in_thread(self, snapshot: Snapshot) -> None:
        # The writer thread keeps its one connection from record to record (opening one per refresh
        # cost more than the writes themselves at 10,000 users); one that failed is closed, so the
        # next record opens a fresh one.
        try:
            self.record(snapshot)
        except Exception:
            connections.close_all()  # this thread's connections
            raise

    async def flush(self) -> None:
        """Wait until every snapshot handed over so far is written."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def aclose(self) -> None:
        """Write what is pending, close the worker thread's database connection, stop the thread."""
        await self.flush()
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, connections.close_all)
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- sync side -----------------------------------------------------------------------------

    def record(self, snapshot: Snapshot) -> RecordResult:
        """Write one snapshot now (sync), then roll up and prune when it is time."""
        result = self.book.record(snapshot)
        self.sources.record(snapshot)
        self.observed_requests += result.d_requests
        self.observed_errors += result.d_errors
        self.observed_latency_ms += result.d_latency_ms
        self.records += 1
        ts = snapshot.timestamp
        if self._last_maintenance is None or ts - self._last_maintenance >= self.maintenance_interval:
            self._last_maintenance = ts
            maintain(self.config, now=ts)
        return result
