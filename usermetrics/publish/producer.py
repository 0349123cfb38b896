"""The producer (async): lead, refresh, work out flags, pack and publish a board, record, send frames.

One leading producer per deployment does all the work of a refresh, once: ``runmonitor`` in a
scaled deployment (several may run; one holds the lease), or the child process of the one Daphne
of the embedded default. Faces never read a source. Each refresh, in order: renew the lease (a standby
stops here), refresh the sources, read the lifecycle flags (``flag_tracker``), pack the board, renew the lease
again (a leader that lost it while refreshing publishes and records nothing), publish, send each
face one message with the frames of its subscriptions (one frame per watched view, built just
before publishing so that they leave at once), hand the snapshot to the history recorder.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Protocol

from usermetrics.alerts.engine import AlertEngine
from usermetrics.board import Board
from usermetrics.clock import Clock, utcnow
from usermetrics.feed.builder import FrameBuilder, face_messages
from usermetrics.feed.subscriptions import Subscription
from usermetrics.history.latency import histogram_meta
from usermetrics.history.recorder import Recorder
from usermetrics.monitor import MonitorService
from usermetrics.packing import BoardCache, board_build
from usermetrics.prices import PriceTable
from usermetrics.selection import FLAG_STATES
from usermetrics.snapshot import Snapshot

from .bus import Published
from .flag_tracker import FlagTracker

logger = logging.getLogger(__name__)

# The producer collects garbage itself. Its records live for many refreshes and hold no cycles,
# so scanning them after every refresh is wasted work (a few ms per thousand changed users): after
# each refresh what the process holds is frozen out of the collector's scans (O(1)), and every
# this many refreshes everything is unfrozen and collected once, garbage cycles included. Left to
# itself, the collector scans every object of a 100,000-user refresh (a million and more) at
# random points of a refresh.
FULL_COLLECTION_EVERY = 100

# How long a refresh may keep its lease by renewing it, in refresh intervals: past that it is stuck,
# and a standby may take over.
KEEP_LEASE_INTERVALS = 6

# ``send(face, message)``: one face's frames of a refresh (``feed.builder.face_messages``).
Sender = Callable[[str, dict[str, object]], Awaitable[None]]
# What the sockets subscribe to, by face and then by group.
SubscriptionsSource = Callable[[], Awaitable[Mapping[str, Mapping[str, Subscription]]]]
LabelsSource = Callable[[], Awaitable[Mapping[str, str]]]
# ``prices()``: the price table in force (``pricing.aprice_table_get``), for the cost in user frames.
PricesSource = Callable[[], Awaitable[PriceTable]]


class Bus(Protocol):
    """Where boards go (``bus.LocalBus`` or ``bus.RedisBus``)."""

    async def publish(self, board: Board) -> None:
        """Make ``board`` the latest."""
        ...

    async def last_published(self) -> Published | None:
        """Which board is the latest."""
        ...


class Lease(Protocol):
    """Leadership (``lease.LocalLease`` or ``lease.RedisLease``)."""

    holder: str

    async def hold(self) -> bool:
        """Renew or take the lease; whether we lead."""
        ...

    async def keep(self, *, longest: float) -> None:
        """Renew the lease while a refresh runs, for at most ``longest`` seconds."""
        ...

    async def release(self) -> None:
        """Give it up."""
        ...


class Producer:
    """The refresh loop of the leading producer."""

    def __init__(
        self,
        monitor: MonitorService,
        *,
        bus: Bus,
        lease: Lease,
        subscriptions: SubscriptionsSource,
        send: Sender,
        labels: LabelsSource,
        prices: PricesSource | None = None,
        recorder: Recorder | None = None,
        flag_tracker: FlagTracker | None = None,
        alerts: AlertEngine | None = None,
        name: str,
        clock: Clock = utcnow,
    ) -> None:
        """Refresh ``monitor`` every interval while leading on ``lease``; publish on ``bus``; send each
        face the frames of what ``subscriptions()`` says its sockets subscribe to with ``send(face, message)``; name
        users with ``labels()`` and cost them with ``prices()`` (None: user frames carry no cost)."""
        self.monitor = monitor
        self.bus = bus
        self.lease = lease
        self.subscriptions = subscriptions
        self.send = send
        self.labels = labels
        self.prices = prices
        self.recorder = recorder
        self.flag_tracker = flag_tracker
        self.alerts = alerts  # evaluates the alert rules after each published refresh (in its own thread)
        self.name = name
        self.clock = clock
        self.cache = BoardCache()
        self.frames = FrameBuilder()
        self.board: Board | None = None
        self.published = 0
        self.last_refresh_ms = 0.0
        self._continued = False

    @property
    def interval(self) -> float:
        """Seconds between refreshes."""
        return self.monitor.interval

    async def tick(self) -> Board | None:
        """One refresh while leading: the board published (None: standing by)."""
        if not await self.lease.hold():
            self._continued = False  # after a takeover, continue the numbering of whoever led meanwhile
            return None
        if not self._continued:
            last = await self.bus.last_published()
            if last is not None:
                self.monitor.seq_from(last.seq)
            self._continued = True
        started = time.perf_counter()
        # A refresh longer than the lease's time to live keeps the lease (a stuck one, for so long only).
        keeper = asyncio.create_task(self.lease.keep(longest=KEEP_LEASE_INTERVALS * self.interval))
        try:
            board, snapshot, names = await self._refresh_and_pack()
        finally:
            keeper.cancel()
            # Waits for it without swallowing a cancellation of this refresh meanwhile (a shutdown).
            (kept,) = await asyncio.gather(keeper, return_exceptions=True)
            if isinstance(kept, Exception):
                raise kept
        frames = await self._frames_build(board, self.board)  # ready before publishing: they leave right after
        if not await self.lease.hold():
            return None  # lost the lease while refreshing: the new leader publishes and records
        await self.bus.publish(board)
        self.board = board
        self.published += 1
        await self._frames_send(board, frames)
        rec = self.recorder
        if rec is not None:
            await rec(snapshot)  # hands the snapshot to the writer thread; never waits for the database
        if self.alerts is not None:
            # Hands the refresh to the alerts thread; never waits.
            window_p95 = self.flag_tracker.latency_p95() if self.flag_tracker is not None else None
            await self.alerts(snapshot, names, window_p95=window_p95)
        self.last_refresh_ms = round((time.perf_counter() - started) * 1000, 2)
        return board

    async def _refresh_and_pack(self) -> tuple[Board, Snapshot, Mapping[str, list[str]]]:
        """Refresh the sources, pack the board and set its flags: the board, the snapshot and the flags."""
        snapshot = await self.monitor.refresh()
        rec = self.recorder
        meta = {
            "refreshes": self.monitor.refresh_count,
            "refresh_ms": self.last_refresh_ms,  # the previous tick's wall time: bench/producer.py reads it
            "observed_requests": rec.observed_requests if rec else 0,
            "observed_errors": rec.observed_errors if rec else 0,
            "observed_latency_ms": rec.observed_latency_ms if rec else 0.0,
            "recording": 1 if rec else 0,
            # The companions' histogram of the recorded requests (/metrics' usermetrics_request_latency_ms).
            **(histogram_meta(rec.observed_histogram, rec.observed_histogram_ms) if rec else {}),
            **(self.alerts.meta() if self.alerts is not None else {}),  # the alerts firing (usermetrics.firing)
        }
        # In a thread, as the merge: seconds at a million users on a busy machine, while the lease is kept.
        build = partial(board_build, producer=self.name, published_at=self.clock(), cache=self.cache)
        board = await asyncio.to_thread(build, snapshot, flag_names=FLAG_STATES, meta=meta)
        # The flags are found from the board's columns, then set on it.
        if self.flag_tracker is not None and self.alerts is not None:
            self.flag_tracker.percentiles = self.alerts.reads_percentiles
        names = await self.flag_tracker.flags(snapshot, board) if self.flag_tracker is not None else {}
        board.flags_set(names)
        return board, snapshot, names

    async def refresh(self) -> Snapshot:
        """One refresh now, published; the monitor's snapshot (tests and one-off runs)."""
        await self.tick()
        snapshot = self.monitor.last_snapshot
        assert snapshot is not None, "the producer does not lead"
        return snapshot

    async def _frames_build(
        self, board: Board, previous: Board | None
    ) -> tuple[Mapping[str, Mapping[str, Subscription]], dict[str, str]]:
        """Each held subscription's frame of ``board``, once, and who holds which (read now, just before publishing)."""
        try:
            faces = await self.subscriptions()
        except Exception:
            logger.warning("Cannot read the subscriptions; no frames this refresh", exc_info=True)
            return {}, {}
        held = {group: sub for by_group in faces.values() for group, sub in by_group.items()}
        if not held:
            self.frames.frames(board, {}, labels={})  # forgets the pages nobody subscribes to
            return faces, {}
        try:
            labels = await self.labels()
        except Exception:
            logger.warning("Identity labels unavailable; sending frames without names", exc_info=True)
            labels = {}
        # A user frame's cost (the table is read from the database at most every 10 s); list frames carry none.
        prices = None
        if self.prices is not None and any(s.user_id is not None for s in held.values()):
            try:
                prices = await self.prices()
            except Exception:
                logger.warning("Prices unavailable; sending user frames without costs", exc_info=True)
        return faces, dict(self.frames.frames(board, held, labels=labels, previous_board=previous, prices=prices))

    async def _frames_send(
        self, board: Board, frames: tuple[Mapping[str, Mapping[str, Subscription]], dict[str, str]]
    ) -> None:
        """One message per face with the frames of its subscriptions (``_frames_build``'s)."""
        faces, texts = frames
        for face, by_group in faces.items():
            for message in face_messages(texts, by_group, seq=board.seq, producer=board.producer):
                try:
                    await self.send(face, message)
                except Exception:
                    logger.warning("Sending frames to face %s failed", face, exc_info=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh at a fixed rate until ``stop`` is set; a standby tries to lead every half interval."""
        await self.monitor.start()
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        collecting = gc.isenabled()
        gc.disable()
        ticks = 0
        try:
            while not stop.is_set():
                board = None
                try:
                    board = await self.tick()
                except Exception:
                    logger.exception("Refresh failed")
                ticks += 1
                if ticks % FULL_COLLECTION_EVERY == 0:
                    gc.unfreeze()
                    gc.collect()
                gc.freeze()
                # Fixed rate: a slow refresh does not stretch the interval; a very slow one skips ticks.
                step = self.interval if board is not None else self.interval / 2
                next_at = max(next_at + step, loop.time())
                try:
                    await asyncio.wait_for(stop.wait(), timeout=next_at - loop.time())
                except TimeoutError:
                    pass
        finally:
            gc.unfreeze()
            if collecting:
                gc.enable()
            await self.close()

    async def close(self) -> None:
        """Give up the lease, write what the recorder holds, close the sources."""
        await self.lease.release()
        if self.recorder is not None:
            await self.recorder.aclose()
        if self.flag_tracker is not None:
            await self.flag_tracker.aclose()
        if self.alerts is not None:
            await self.alerts.aclose()
        await self.monitor.aclose()
