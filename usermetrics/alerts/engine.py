"""The alert engine (async edge over a worker thread): the producer's hook after each published refresh.

``await engine(snapshot, flags)`` hands the refresh to one worker thread and returns at once; the
thread reads the rules and silences, steps the incidents, writes what changed and queues the
notifications, and wakes the courier, which sends them from a thread of its own. The producer's
loop never waits for the database or for a receiver: while the worker is busy only the newest
refresh waits (the rules judge durations by timestamps, so a skipped refresh changes nothing).
``meta()`` is the latest evaluation's counts for the next board (``usermetrics.firing``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.db import close_old_connections, connections

from usermetrics.conf import AlertsConfig, get_config
from usermetrics.firing import firing_meta
from usermetrics.handoff import Handoff
from usermetrics.history.spend import fleet_tokens, window_totals
from usermetrics.identities import identity_labels
from usermetrics.snapshot import Snapshot
from usermetrics.windows import window_length

from .delivery import Courier
from .incidents import Book, Step
from .rules import FLEET_BUDGET_KINDS, KINDS, USER_BUDGET_KINDS, Reading, RuleSpec
from .store import book_load, rules_load, silences_load, step_write

logger = logging.getLogger(__name__)

# How often the budgets read the history again (every user's sums over a window are one grouped
# query: not one per refresh). A budget crossed is seen within this, plus the rule's **for**.
SPEND_EVERY = timedelta(seconds=30)


class AlertEngine:
    """Evaluates the rules after each refresh in one worker thread; the courier delivers."""

    def __init__(self, config: AlertsConfig, *, courier: Courier | None = None) -> None:
        """Alert as ``config`` says; deliver through ``courier`` (default: a courier of its own)."""
        self.config = config
        self.courier = courier or Courier(config)
        self.book: Book | None = None
        self.evaluations = 0
        self.last_ms = 0.0
        # Whether an enabled rule reads the windowed p95 (as of the last evaluation): the producer's
        # flag reads sum every user's histograms only then.
        self.reads_percentiles = False
        self._meta: dict[str, float] = {}
        # The budgets' reads of the history: by window name (``""``: the fleet's last hour), when and what.
        self._spend: dict[str, tuple[datetime, Any]] = {}
        self._evaluator: Handoff[Reading] = Handoff(
            self._evaluate_in_thread,
            name="usermetrics-alerts",
            failure="Evaluating the alert rules failed",
            logger=logger,
            on_error=self._forget_book,
            on_close=connections.close_all,  # the thread's connections
        )

    def meta(self) -> dict[str, float]:
        """The latest evaluation's counts, for the board's meta ({} before the first)."""
        return self._meta

    # -- async side ----------------------------------------------------------------------------

    async def __call__(
        self,
        snapshot: Snapshot,
        flags: Mapping[str, Sequence[str]],
        *,
        window_p95: Mapping[str, float] | None = None,
    ) -> None:
        """Hand one refresh (its users' flags and windowed p95, ``FlagTracker``) to the worker; return at once."""
        self._evaluator.submit(Reading.of(snapshot, flags, window_p95=window_p95))

    def _evaluate_in_thread(self, reading: Reading) -> None:
        close_old_connections()
        try:
            self.evaluate(reading)
        finally:
            close_old_connections()

    def _forget_book(self) -> None:
        # After a failure, read the incidents back from the database: what was written is the truth.
        self.book = None

    async def flush(self) -> None:
        """Wait until every refresh handed over so far is evaluated."""
        await self._evaluator.flush()

    async def aclose(self) -> None:
        """Evaluate what is pending, stop the courier (the outbox keeps the rest), close the thread."""
        await self._evaluator.flush()
        await asyncio.get_running_loop().run_in_executor(None, self.courier.stop)
        await self._evaluator.aclose()

    # -- sync side -----------------------------------------------------------------------------

    def evaluate(self, reading: Reading) -> Step:
        """One evaluation now (sync): step the incidents, write the changes, queue and wake the deliveries."""
        started = time.perf_counter()
        if self.book is None:
            self.book = book_load()
        rules = rules_load()
        self.reads_percentiles = any(KINDS[r.kind].reads_percentiles for r in rules)
        reading = self._with_spend(reading, rules)
        step = self.book.step(rules, reading, silences_load(reading.now))
        if step.fired or step.resolved or step.closed or step.notices:
            users = any(KINDS[n.rule.kind].subject == "user" for n in step.notices)
            labels = identity_labels() if users else {}
            queued = step_write(
                step, now=reading.now, queued_at=self.courier.clock(), config=self.config, labels=labels
            )
            if queued:
                self.courier.wake()
            elif step.notices and not self.config.urls and not all(n.rule.routes for n in step.notices):
                logger.warning("An alert fired but no route is configured (USERMETRICS_ALERT_URLS or a rule's routes)")
        counts = self.book.counts
        self._meta = firing_meta(
            firing=counts.firing, silenced=counts.silenced, severity=counts.severity, by_rule=counts.by_rule
        )
        self.evaluations += 1
        self.last_ms = round((time.perf_counter() - started) * 1000, 3)
        return step

    def _with_spend(self, reading: Reading, rules: list[RuleSpec]) -> Reading:
        """``reading`` with what its enabled budget rules read of the history (none: as it is)."""
        windows = {r.window for r in rules if r.kind in USER_BUDGET_KINDS}
        fleet = any(r.kind in FLEET_BUDGET_KINDS for r in rules)
        if not (windows or fleet) or not get_config().history.enabled:
            return reading
        spend = {w: self._spend_read(w, reading.now) for w in sorted(windows)}
        hour = self._spend_read("", reading.now) if fleet else None
        return replace(reading, spend=spend, fleet_hour_cost=hour)

    def _spend_read(self, window: str, now: datetime) -> Any:
        """A window's (tokens, cost) per user (``""``: the fleet's cost in the last hour), read every SPEND_EVERY."""
        kept = self._spend.get(window)
        if kept is not None and timedelta(0) <= now - kept[0] < SPEND_EVERY:
            return kept[1]
        if window:
            value: Any = window_totals(window=window_length(window), now=now)
        else:
            total = fleet_tokens(window=timedelta(hours=1), now=now)
            value = total.cost if total is not None else None
        self._spend[window] = (now, value)
        return value
