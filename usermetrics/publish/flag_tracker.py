"""The lifecycle flags of every refresh (async), from window stats read in a thread of their own."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from django.db import close_old_connections, connections

from usermetrics.board import Board
from usermetrics.conf import get_config
from usermetrics.handoff import Handoff
from usermetrics.history.flags import flag_stats, flagged
from usermetrics.history.query import WindowStats
from usermetrics.snapshot import Snapshot

logger = logging.getLogger(__name__)

# Seconds between two reads of every user's window stats (the rising and erroring flags).
FLAGS_REFRESH = 30.0
# Seconds a refresh waits for such a read at most: at a million users one read can outlast a refresh,
# and a producer that waited for it stalled (one board in 40 s); it goes on with the stats it has.
STATS_WAIT = 5.0


class FlagTracker:
    """The flags the list filters by, every refresh; window stats re-read at most every ``FLAGS_REFRESH`` s.

    The stats are one aggregate query over every user, run in a thread of its own so the
    producer's loop never waits on the database (the refresh does: its flags need the stats);
    while they cannot be read, the last stats serve.
    """

    def __init__(self, *, every: float = FLAGS_REFRESH, wait: float = STATS_WAIT) -> None:
        """Re-read the stats ``every`` seconds; a refresh waits for a read ``wait`` seconds at most."""
        self.every = every
        self.wait = wait
        self._stats: dict[str, WindowStats] | None = None
        self._p95: dict[str, float] | None = None
        self._read_at: float | None = None
        # Whether to sum every user's histograms too (an enabled user_latency_p95 rule reads them), and
        # whether the last read did: a rule enabled since is read for at the next refresh, not 30 s on.
        self.percentiles = False
        self._summed = False
        # One read at a time, awaited: nothing ever waits behind it, so "only the newest waits" is moot here.
        self._reader: Handoff[datetime] = Handoff(
            self._read,
            name="usermetrics-flags",
            failure="Window stats for the flags unavailable; the last ones serve",
            logger=logger,
            level=logging.WARNING,
            on_close=connections.close_all,  # the thread's connections
        )

    def _read(self, now: datetime) -> None:
        close_old_connections()
        try:
            summed = self.percentiles
            stats = flag_stats(None, now=now, percentiles=summed)  # kept only when the read succeeds
            # The windowed p95 the latency alerts read, worked out once per read (not per refresh); None
            # (not "nobody") when this read did not sum the histograms.
            self._p95 = (
                {uid: p for uid, s in (stats or {}).items() if (p := s.percentiles[1]) is not None} if summed else None
            )
            self._stats, self._summed = stats, summed
        finally:
            close_old_connections()

    async def flags(self, snapshot: Snapshot, board: Board) -> dict[str, list[str]]:
        """Every user's raised flags (but idle) as of ``snapshot`` (``board`` is its board)."""
        due = self._read_at is None or time.monotonic() - self._read_at >= self.every
        if get_config().history.enabled and (due or (self.percentiles and not self._summed)):
            self._read_at = time.monotonic()
            self._reader.submit(snapshot.timestamp)
            try:
                await asyncio.wait_for(self._reader.flush(), timeout=self.wait)
            except TimeoutError:
                pass  # a read slower than that (a million users' windows): its stats serve the refreshes after it
        stats = self._stats if get_config().history.enabled else None
        return flagged(snapshot, board, stats, now=snapshot.timestamp)

    def latency_p95(self) -> dict[str, float] | None:
        """Each user's p95 over the flag window as of the last read (users with requests in it); None: no history."""
        return self._p95 if get_config().history.enabled else None

    async def aclose(self) -> None:
        """Close the stats thread's database connection and stop the thread."""
        await self._reader.aclose()
