"""A face's side of the bus (async): the latest board, this face's subscriptions advertised, frames handed out.

Faces never read a source. In one process the latest board is the local bus's; through Redis the
follower wakes on the producer's pub/sub message (or every half interval, should one be missed),
fetches the new board once (after that refresh's frames went out), decodes it in a thread and swaps
it in. It renews this face's entry in the subscription directory (``advertiser``), and it tells the
face's sockets when no producer has published for ``stale_after`` seconds, and again when one does.

The producer sends this face one message per refresh with the frames of the subscriptions its sockets
watch (through Redis on the face's own channel, ``receive``; in one process by a direct call to
``deliver``); the follower hands each frame to every socket of that subscription, each in its own task so
that a socket busy with its own subscription holds up no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from usermetrics.board import Board
from usermetrics.clock import Clock, utcnow
from usermetrics.feed.builder import face_frames
from usermetrics.feed.subscriptions import SubscriptionDirectory, SubscriptionRegistry
from usermetrics.humanize import producer_words
from usermetrics.orders import board_receive
from usermetrics.snapshot import iso

from .advertiser import Advertiser
from .bus import LocalBus, Published, RedisBus

logger = logging.getLogger(__name__)

STATUS_TYPE = "metrics.status"  # a producer state message, handled by consumers' ``metrics_status``
CATCH_UP_TYPE = "metrics.catch_up"  # a newer board for a new subscriber, handled by consumers' ``metrics_catch_up``
# Seconds a face waits, at most, for a refresh's frames before it takes that refresh's board in: decoding
# every user's row (in a thread, holding the GIL by turns) slowed handing the frames out to the sockets.
FRAMES_FIRST = 0.5

Notify = Callable[[dict[str, object]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ProducerState:
    """Whether a producer publishes, as a face sees it."""

    state: str  # "ok": a board younger than stale_after; "absent": none, or too old
    last_publish: datetime | None
    seq: int
    producer: str | None

    @property
    def publishing(self) -> bool:
        """Whether a producer publishes now."""
        return self.state == "ok"

    @property
    def words(self) -> str:
        """What a page says of it ('' while a producer publishes)."""
        return "" if self.publishing else producer_words(self.last_publish)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (the status API, the sockets' status messages)."""
        return {
            "state": self.state,
            "last_publish": iso(self.last_publish),
            "seq": self.seq,
            "producer": self.producer,
            "words": self.words,
        }


class Follower:
    """The latest board for this face, its subscriptions advertised, and the producer's state."""

    def __init__(
        self,
        *,
        bus: LocalBus | RedisBus,
        registry: SubscriptionRegistry,
        face: str,
        interval: float,
        stale_after: float,
        notify: Notify | None = None,
        directory: SubscriptionDirectory | None = None,
        receive: Receive | None = None,
        clock: Clock = utcnow,
    ) -> None:
        """Follow ``bus``; advertise ``registry``'s subscriptions as ``face`` (through Redis: ``directory``).

        ``receive()`` waits for this face's next frames message (through Redis; None: the producer
        calls ``deliver`` itself); ``notify`` tells the sockets of the producer's state (by
        default each socket of ``registry``).
        """
        self.bus = bus
        self.registry = registry
        self.face = face
        self.interval = interval
        self.stale_after = stale_after
        self.notify = notify or self.broadcast
        self.directory = directory
        self.receive = receive
        self.clock = clock
        self._board: Board | None = None
        self._synced = asyncio.Event()
        self._told: str | None = None
        self._handing: set[asyncio.Task[None]] = set()
        self.advertiser = Advertiser(registry=registry, face=face, directory=directory, ttl=max(2.0, 3 * interval))
        self.redis_error: str | None = None
        self.delivered = 0  # frames handed to sockets (tests and benchmarks count them)
        self._frames_seq = 0  # the newest refresh whose frames this face handed out
        self._frames_in = asyncio.Event()

    def latest(self) -> Board | None:
        """The latest board this face has (None: no producer has published yet)."""
        if isinstance(self.bus, LocalBus):
            return self.bus.latest()
        return self._board

    def state(self) -> ProducerState:
        """Whether a producer publishes: a board no older than ``stale_after``."""
        board = self.latest()
        if board is None:
            return ProducerState("absent", None, 0, None)
        fresh = (self.clock() - board.published_at).total_seconds() <= self.stale_after
        return ProducerState("ok" if fresh else "absent", board.published_at, board.seq, board.producer)

    async def sync(self) -> None:
        """Fetch the board on the bus when it is newer than ours (through Redis; decoded off the loop)."""
        if not isinstance(self.bus, RedisBus):
            return
        published = await self.bus.last_published()
        current = self._board
        if published is None or (current is not None and Published.of(current) == published):
            return
        await self._frames_first(published.seq)
        data = await self.bus.fetch()
        if data is None:
            return
        board = await asyncio.to_thread(board_receive, data, current)
        if self._board is None or (board.published_at, board.seq) >= (self._board.published_at, self._board.seq):
            self._board = board
            self.board_arrived(board)

    async def first_board(self, *, within: float) -> None:
        """Wait until a board is here (or ``within`` seconds pass): a starting face, or an embedded producer."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        if isinstance(self.bus, LocalBus):
            await asyncio.to_thread(self.bus.published.wait, within)
            return
        try:
            await asyncio.wait_for(self._synced.wait(), timeout=max(0.0, end - loop.time()))
        except TimeoutError:
            pass

    async def _frames_first(self, seq: int) -> None:
        """Wait (``FRAMES_FIRST`` at most) until refresh ``seq``'s frames are handed out, when sockets wait for them."""
        loop = asyncio.get_running_loop()
        end = loop.time() + FRAMES_FIRST
        while self._frames_seq < seq and self.registry.counts() and (left := end - loop.time()) > 0:
            self._frames_in.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._frames_in.wait(), left)

    def deliver(self, message: dict[str, Any]) -> None:
        """Hand each frame of one frames message to every socket of its subscription (not waiting for them)."""
        self._frames_seq = max(self._frames_seq, int(message.get("seq", 0)))
        self._frames_in.set()
        for group, event in face_frames(message):
            for receiver in self.registry.receivers(group):
                self.advertiser.fed(receiver)
                self._hand(receiver.metrics_update(event))
                self.delivered += 1

    def board_arrived(self, board: Board) -> None:
        """A newer board is here: each new subscriber the producer has not fed yet takes its frame from it.

        One that subscribed after the producer read the subscriptions, but before this face had the board,
        would skip it (``metrics_catch_up`` sends it unless the producer's came; built once per view and board).
        """
        event = {"type": CATCH_UP_TYPE, "seq": board.seq, "producer": board.producer}
        for receiver in self.advertiser.fresh_take():
            self._hand(receiver.metrics_catch_up(dict(event)))

    async def broadcast(self, event: dict[str, object]) -> None:
        """Tell every socket of this face the producer's state (the default ``notify``)."""
        for receiver in self.registry.receivers():
            self._hand(receiver.metrics_status(dict(event)))

    def _hand(self, call: Coroutine[Any, Any, None]) -> None:
        # A task each: the caller never waits on a socket; the set keeps them from being collected.
        task = asyncio.ensure_future(call)
        self._handing.add(task)
        task.add_done_callback(self._handed)

    def _handed(self, task: asyncio.Task[None]) -> None:
        self._handing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("Handing a frame to a socket failed", exc_info=task.exception())

    async def take_frames(self, stop: asyncio.Event) -> None:
        """Receive this face's frames messages until ``stop`` and hand them out (through Redis)."""
        if self.receive is None:
            return
        backoff = 0.5
        while not stop.is_set():
            try:
                message = await self.receive()
            except Exception as exc:
                if isinstance(exc, (RedisError, OSError)):
                    logger.debug("Receiving frames failed (%s)", exc)  # down with Redis: the board follower says so
                else:
                    # Anything else (a message this version cannot read) must not end this face's frames for good.
                    logger.exception("Receiving frames failed; receiving again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(5.0, backoff * 2)
                continue
            backoff = 0.5
            if isinstance(message, dict):
                self.deliver(message)

    def status_text(self) -> str:
        """The sockets' status message: ``{"type": "status", "producer": {...}}`` (not a monitor document)."""
        return json.dumps({"type": "status", "producer": self.state().as_dict()}, separators=(",", ":"))

    async def watch(self) -> None:
        """Tell this face's sockets when the producer goes away and when it is back."""
        state = self.state()
        if state.state == self._told:
            return
        if self._told is not None or not state.publishing:
            try:
                await self.notify({"type": STATUS_TYPE, "text": self.status_text()})
            except (RedisError, OSError):
                # The channel layer is Redis too, and down with it: no socket can be told now (they
                # are closed and reconnect). Raising here ended the follower for good.
                return
        self._told = state.state

    async def run(self, stop: asyncio.Event) -> None:
        """Follow and take frames until ``stop`` is set; Redis errors are said once and retried with a growing pause."""
        frames = asyncio.ensure_future(self.take_frames(stop))
        try:
            await self._follow(stop)
        finally:
            frames.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await frames

    async def _follow(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                pubsub = None
                if isinstance(self.bus, RedisBus):
                    pubsub = self.bus.redis.pubsub()
                    await pubsub.subscribe(self.bus.channel)
                try:
                    while not stop.is_set():
                        await self.sync()
                        self._synced.set()
                        await self.advertiser.advertise()
                        await self.watch()
                        if self.redis_error is not None:
                            logger.warning("Redis is reachable again: following the producer's boards")
                            self.redis_error = None
                        backoff = 0.5
                        await self._wait(pubsub, stop)
                finally:
                    if pubsub is not None:
                        await pubsub.aclose()
            except (RedisError, OSError) as exc:
                if self.redis_error is None:
                    logger.warning("Redis unreachable (%s): this face shows the last board until it is back", exc)
                self.redis_error = str(exc)
                await self.watch()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(5.0, backoff * 2)

    async def _wait(self, pubsub: object, stop: asyncio.Event) -> None:
        """Until the producer says it published (or half an interval passes, or ``stop``)."""
        timeout = max(0.05, self.interval / 2)
        if pubsub is None:
            try:
                await asyncio.wait_for(stop.wait(), timeout=timeout)
            except TimeoutError:
                pass
            return
        await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)  # type: ignore[attr-defined]
