"""What one Prometheus scrape reports (async): the latest board, the producer, ended users, recorder totals, alerts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import sync_to_async
from usermetrics_nat.histogram import Counts

from usermetrics.board import Board
from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.figures import ModelTotal
from usermetrics.firing import Firing, firing_of
from usermetrics.history.ended import ended_count
from usermetrics.history.latency import histogram_of_meta
from usermetrics.pricing import aprice_table_get
from usermetrics.publish.follower import ProducerState

from .costs import fleet_llm_get
from .live import board_get, producer_state

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

    board: Board
    producer: ProducerState
    now: datetime
    refreshes: int  # by the producer that published the board
    interval: float
    ended: int | None  # ended users kept by the history (None: history off or unreadable)
    observed: Observed | None  # None: the producer records no history
    alerts: Firing  # firing subjects per rule, as the producer published them
    # The companions' histogram of every recorded request (not cumulative per bucket) and NAT's
    # latency sum of those requests; None: the producer records no history, or no companion counted one.
    latency: tuple[Counts, float] | None = None
    queued: int = 0  # requests queued on users' semaphores now, over every user
    saturated: int = 0  # users with a request queued now
    # Every user's LLM calls, tokens and cost per model (bounded: ``figures.FLEET_MODELS_MAX``, then
    # "other"), the table's currency, and the tool calls over every user.
    llm: list[ModelTotal] = field(default_factory=list)
    currency: str = ""
    tool_calls: int = 0


async def scrape_get() -> ScrapeState:
    """The state of one scrape; the live aggregates are reported even when the store is unreadable."""
    board = board_get()
    ended: int | None = None
    if get_config().history.enabled:
        try:
            ended = await sync_to_async(ended_count)()
        except Exception:
            logger.exception("Counting ended users for /metrics failed")
    meta = board.meta
    observed = None
    if meta.get("recording"):
        observed = Observed(
            int(meta["observed_requests"]), int(meta["observed_errors"]), float(meta["observed_latency_ms"])
        )
    return ScrapeState(
        board=board,
        producer=producer_state(),
        now=utcnow(),
        refreshes=int(meta.get("refreshes", board.seq)),
        interval=get_config().refresh_interval,
        ended=ended,
        observed=observed,
        alerts=firing_of(meta),
        latency=histogram_of_meta(meta),
        # The board's packed column (C-speed sums at any number of users); users without extras read 0.
        queued=int(sum(board.columns["queued"])),
        saturated=sum(map(bool, board.columns["queued"])),
        llm=await fleet_llm_get(board),
        currency=(await aprice_table_get()).currency,
        tool_calls=int(sum(board.columns["tool_calls"])),
    )
