"""The bus (async): where the producer puts each board and the faces find it.

``LocalBus`` is one process (the embedded default): the board object itself is handed over.
``RedisBus`` is a deployment: the board's bytes go under one key (a board of 100,000 users is tens
of megabytes, over Redis's default pub/sub output limits), a small meta key says which board it
is, and a pub/sub message wakes the faces, which then fetch it once each.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from usermetrics.board import Board
from usermetrics.board_wire import board_encode


@dataclass(frozen=True)
class Published:
    """Which board is on the bus: its producer, sequence number and publishing time."""

    producer: str
    seq: int
    published_at: datetime

    @classmethod
    def of(cls, board: Board) -> Published:
        """What ``board`` says of itself."""
        return cls(board.producer, board.seq, board.published_at)


class LocalBus:
    """The latest board of this process (thread-safe: tests publish from other threads)."""

    def __init__(self) -> None:
        """Nothing published yet."""
        self._lock = threading.Lock()
        self._latest: Board | None = None
        self.published = threading.Event()  # set at the first publish (a starting face waits for it)

    async def publish(self, board: Board) -> None:
        """Make ``board`` the latest."""
        with self._lock:
            self._latest = board
        self.published.set()

    async def last_published(self) -> Published | None:
        """Which board is the latest (None: none yet)."""
        latest = self.latest()
        return Published.of(latest) if latest is not None else None

    def latest(self) -> Board | None:
        """The latest board."""
        with self._lock:
            return self._latest


class RedisBus:
    """Boards through Redis: ``<prefix>:board`` (bytes), ``<prefix>:board:meta`` (JSON), a pub/sub wake-up."""

    def __init__(self, redis: Redis, *, prefix: str = "usermetrics") -> None:
        """Publish and read under ``prefix``."""
        self.redis = redis
        self.key = f"{prefix}:board"
        self.meta_key = f"{prefix}:board:meta"
        self.channel = f"{prefix}:board:published"

    async def publish(self, board: Board) -> None:
        """Put ``board`` on the bus and wake every face; the board and its meta change together."""
        meta = json.dumps(
            {"producer": board.producer, "seq": board.seq, "published_at": board.published_at.isoformat()}
        )
        data = await asyncio.to_thread(board_encode, board)  # hundreds of ms at a million users: off the loop
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.key, data)
            pipe.set(self.meta_key, meta)
            pipe.publish(self.channel, meta)
            await pipe.execute()

    async def last_published(self) -> Published | None:
        """Which board is on the bus (None: none ever was)."""
        raw = await self.redis.get(self.meta_key)
        if raw is None:
            return None
        doc = json.loads(raw)
        return Published(doc["producer"], int(doc["seq"]), datetime.fromisoformat(doc["published_at"]))

    async def fetch(self) -> bytes | None:
        """The latest board's bytes (decode them off the event loop: a large board takes a while)."""
        return await self.redis.get(self.key)
